"""The pretraining stage: the encoder learns to read before it learns labels.

With `pretrain_epochs`, `train` first trains the embedding and the first
recurrent layer as forward and backward language models
(`recurrent_zoo.models.pretrain_encoder`) on unlabeled text: the run's
training part (never its validation or test texts) plus, for IMDB, the
50,000 `train/unsup` reviews (or `pretrain_unlabeled` of them). The stage
runs once per run: its result (the whole classifier's weights,
`pretrained.weights.h5`) and its record (`pretraining.json`, written last)
stay in the run folder, so a resume after it skips it.
"""

from __future__ import annotations

import time
from typing import Any

import keras

from recurrent_zoo.data import TextClassificationData, load_unlabeled
from recurrent_zoo.models.language_model import pretrain_encoder
from recurrent_zoo.run_files import write_json
from recurrent_zoo.training.run import Run, stage_record

__all__ = ["pretrain"]

# Validation texts whose exact language-model loss is reported while
# pretraining: a full softmax per word, so a sample is enough.
VALIDATION_TEXTS = 500


def pretrain(
    run: Run,
    model: keras.Model,
    arguments: dict,
    data: Any,
    train_part: TextClassificationData,
    validation: TextClassificationData,
    done: int,
    verbose: int,
) -> dict:
    """Pretrains `model`'s encoder once per run; the stage's record.

    Args:
        run: the run folder.
        model: the classifier, adapted, not yet compiled.
        arguments: the run's arguments.
        data: where the corpus is (its unlabeled texts are read too).
        train_part: the run's training texts.
        validation: the run's validation texts (a sample scores the stage).
        done: epochs the run has finished: once one has, the backup holds
            newer weights than the pretrained ones, which are not loaded.
        verbose: 0 silent, 1 progress bars and notices.
    """
    weights, record_path = run / "pretrained.weights.h5", run / "pretraining.json"
    record = stage_record(record_path, weights)
    if record is not None:
        if not done:
            model.load_weights(weights)
            if verbose:
                print(f"Pretrained encoder read from {weights}.", flush=True)
        return record
    cap = _unlabeled_cap(arguments, train_part)
    extra = [] if cap == 0 else load_unlabeled(arguments["corpus"], data, cap)
    texts = list(train_part.texts) + extra
    if verbose:
        print(
            f"Pretraining the encoder as a language model on {len(texts)} texts "
            f"({len(extra)} unlabeled) for {arguments['pretrain_epochs']} "
            "epoch(s).",
            flush=True,
        )
    started = time.perf_counter()
    history = pretrain_encoder(
        model,
        texts,
        epochs=arguments["pretrain_epochs"],
        batch_size=arguments["batch_size"],
        learning_rate=arguments["pretrain_learning_rate"],
        validation_texts=validation.texts[:VALIDATION_TEXTS],
        seed=arguments["seed"],
        verbose=verbose,
    ).history
    record = {
        "epochs": arguments["pretrain_epochs"],
        "texts": len(texts),
        "unlabeled_texts": len(extra),
        "loss": [float(v) for v in history["loss"]],
        "val_loss": [float(v) for v in history.get("val_loss", [])],
        "seconds": time.perf_counter() - started,
    }
    model.save_weights(weights)
    write_json(record_path, record)  # last: marks the stage as finished
    return record


def _unlabeled_cap(arguments: dict, train_part: TextClassificationData) -> int | None:
    """How many unlabeled texts join the training part (None: all).

    A sliced run (max_per_class) gets as many unlabeled texts as labeled
    ones, not all 50,000 of IMDB's; `pretrain_unlabeled` caps them too.
    """
    caps = [arguments.get("pretrain_unlabeled")]
    if arguments["max_per_class"] is not None:
        caps.append(len(train_part))
    caps = [cap for cap in caps if cap is not None]
    return min(caps) if caps else None
