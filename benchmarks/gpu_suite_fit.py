"""The fit part of `gpu_suite.py`: a short `fit` of the prebuilt sentiment
model on IMDB, or on a synthetic corpus when the archive is absent, timed
epoch by epoch."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from gpu_suite_parts import PartWriter

FIT = dict(per_class=1000, eval_per_class=250, batch=64, epochs=3, overrides={})
QUICK_FIT = dict(
    per_class=32,
    eval_per_class=16,
    batch=16,
    epochs=2,
    overrides=dict(
        vocabulary_size=300,
        sequence_length=30,
        embedding_dim=8,
        units=(4,),
        attention_units=4,
    ),
)

_POSITIVE = "good great excellent moving superb wonderful loved brilliant fun".split()
_NEGATIVE = "bad awful boring dull terrible worst hated weak silly".split()


def synthetic_corpus(
    count: int, seed: int, words: tuple[int, int] = (100, 400)
) -> tuple[list[str], np.ndarray]:
    """Review-like strings with a learnable label: filler words, and more
    words of the label's sentiment than of the other. Lengths default to
    IMDB's range after the model's 400-word cut, so steps cost about the
    same."""
    rng = np.random.default_rng(seed)
    filler = np.array([f"w{i}" for i in range(2000)])
    labels = rng.integers(0, 2, size=count).astype("int32")
    texts = []
    for label in labels:
        tokens = list(rng.choice(filler, size=int(rng.integers(*words))))
        own, other = (_POSITIVE, _NEGATIVE) if label else (_NEGATIVE, _POSITIVE)
        marked = max(3, len(tokens) // 20)
        for word in [*rng.choice(own, marked), *rng.choice(other, marked // 3)]:
            tokens.insert(int(rng.integers(0, len(tokens) + 1)), str(word))
        texts.append(" ".join(tokens))
    return texts, labels


def find_imdb(candidates: Iterable[str]) -> Path | None:
    """The first folder of `candidates` holding `aclImdb.tar.gz`."""
    for folder in candidates:
        if folder and (Path(folder) / "aclImdb.tar.gz").is_file():
            return Path(folder)
    return None


def fit_corpus(
    spec: dict[str, Any], settings: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """(train, evaluation, description): IMDB when found, else synthetic."""
    from recurrent_zoo.data import TextClassificationData, load_imdb

    folder = find_imdb(spec["data"])
    if folder is not None:
        train = load_imdb(folder, "train", max_per_class=settings["per_class"])
        held = load_imdb(folder, "test", max_per_class=settings["eval_per_class"])
        return train, held, {"source": "imdb", "path": str(folder)}
    names = ("neg", "pos")
    words = (10, 40) if spec["quick"] else (100, 400)
    sets = [
        TextClassificationData(*synthetic_corpus(2 * n, seed, words), names)
        for seed, n in ((0, settings["per_class"]), (1, settings["eval_per_class"]))
    ]
    reason = f"aclImdb.tar.gz not found in {spec['data']}"
    return sets[0], sets[1], {"source": "synthetic", "reason": reason}


def _epoch_timer(writer: PartWriter, batch: int, examples: int):
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds and steps per epoch; stops at the soft deadline, mid-epoch
        if need be, so the part ends before the parent has to kill it."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.steps, self.cut = time.perf_counter(), 0, False

        def on_train_batch_end(self, batch_index, logs=None):
            self.steps += 1
            if writer.time_left() < 0:
                self.model.stop_training, self.cut = True, True

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            seen = self.steps * batch if self.cut else examples
            writer.add(
                "rows",
                {
                    "epoch": epoch + 1,
                    "seconds": seconds,
                    "steps": self.steps,
                    "steps_per_s": self.steps / seconds,
                    "sequences_per_s": seen / seconds,
                    "complete": not self.cut,
                    **{k: float(v) for k, v in (logs or {}).items()},
                },
            )

    return EpochTimer()


def part_fit(writer: PartWriter) -> None:
    from recurrent_zoo import models

    settings = QUICK_FIT if writer.spec["quick"] else FIT
    train, held, data = fit_corpus(writer.spec, settings)
    data.update(
        train_texts=len(train),
        eval_texts=len(held),
        mean_words=float(np.mean([len(t.split()) for t in train.texts])),
    )
    model = models.get("sentiment", **settings["overrides"])
    started = time.perf_counter()
    model.adapt(train.texts)
    adapt_s = time.perf_counter() - started
    model.compile()
    writer.set(
        data=data,
        batch=settings["batch"],
        adapt_s=adapt_s,
        model={"name": "sentiment", **settings["overrides"]},
        jit_compile=bool(model.jit_compile),
    )
    timer = _epoch_timer(writer, settings["batch"], len(train))
    model.fit(
        train.to_dataset(settings["batch"], seed=0),
        epochs=settings["epochs"],
        callbacks=[timer],
        verbose=0,
    )
    if writer.time_left() > 0:
        started = time.perf_counter()
        scores = model.evaluate(held.to_dataset(256, shuffle=False), verbose=0)
        seconds = time.perf_counter() - started
        writer.set(
            evaluation={
                "accuracy": float(scores[1]),
                "seconds": seconds,
                "sequences_per_s": len(held) / seconds,
            }
        )
    complete = [r for r in writer.data["rows"] if r["complete"]]
    if len(complete) < settings["epochs"]:
        writer.set(status="partial")
