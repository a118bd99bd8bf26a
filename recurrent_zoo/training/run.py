"""The run: one folder that holds everything a resumable training run needs.

Every stage of the upper floor keeps its state in a run folder and writes
it the same way (`recurrent_zoo.run_files`: beside, then renamed, so a kill
never leaves half a file):

    run.json        the run's arguments (a resume must match them)
    vocabulary.txt  the adapted vocabulary, one word per line (a
                    character language model's: one character per line,
                    newline and backslash escaped)
    pretrained.weights.h5, pretraining.json
                    with `pretrain_epochs`: the classifier after language-
                    model pretraining, and that stage's history
    history.csv     one row per finished epoch, appended across resumes
    best.keras      the model after the best epoch by `monitor` (the lowest
                    val_loss by default, or the highest val_accuracy)
    backup/         BackupAndRestore's last-epoch state (deleted at the end)
    logs/           TensorBoard logs (if the tensorboard package is installed)
    refit/          with `refit`: the model trained again on all training
                    texts for the best epoch count (`training.refit`)
    model.keras     the final model: a copy of best.keras, or of
                    refit/model.keras with `refit`
    metrics.json    test metrics, history, timings, machine; marks the run
                    as finished
    curves.png      the learning curves

plus the task's report (a classifier's confusion.png);
and a stage that runs once per run (pretraining, refitting) is finished
exactly when its record file exists: it is written last (`stage_record`).
`Run` is that folder; `train` (`recurrent_zoo.training.stages`), the refit
and pretraining stages and the tuner's settings check all go through it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from recurrent_zoo.run_files import copy_atomically, read_json, write_json, write_text
from recurrent_zoo.training.history import read_history, trim_history

__all__ = ["Run", "describe_changes", "load_finished", "stage_record"]

# Every file and folder a run writes, whatever its task: what `overwrite`
# (or a fresh run in a folder with stale leftovers) deletes, and nothing
# else. A task adds the files of its own report (`Task.report_files`).
RUN_FILES = (
    "run.json",
    "vocabulary.txt",
    "pretrained.weights.h5",
    "pretraining.json",
    "history.csv",
    "best.keras",
    "model.keras",
    "metrics.json",
    "curves.png",
)
RUN_DIRS = ("backup", "logs", "refit")


def load_finished(out_dir: str | os.PathLike[str]) -> dict | None:
    """The metrics of a finished run in `out_dir`, or None if there is none.

    Args:
        out_dir: a `train` output folder.

    Returns:
        The contents of `out_dir/metrics.json`, or None when it is absent.
    """
    path = Path(out_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def describe_changes(saved: dict, arguments: dict) -> str:
    """ "key: old -> new" for every argument that differs, sorted by key."""
    return ", ".join(
        f"{key}: {saved.get(key)!r} -> {arguments.get(key)!r}"
        for key in sorted(set(saved) | set(arguments))
        if saved.get(key) != arguments.get(key)
    )


def stage_record(record: Path, *outputs: Path) -> dict | None:
    """A once-per-run stage's record, if the stage finished (else None).

    The record is the stage's last write, so its presence (with the
    outputs it names) means the stage need not run again.
    """
    if not all(path.is_file() for path in outputs):
        return None
    return read_json(record)


class Run:
    """A run folder: its recorded arguments, its files, its resume state.

    Args:
        out: the folder.
        report_files: the task's own result files, cleared with the rest.
    """

    def __init__(self, out: Path, report_files: Sequence[str] = ()) -> None:
        self.out = Path(out)
        self.files = (*RUN_FILES, *report_files)

    def __truediv__(self, name: str) -> Path:
        return self.out / name

    @property
    def backup(self) -> Path:
        return self.out / "backup"

    def saved_arguments(self) -> dict | None:
        return read_json(self.out / "run.json")

    def finished(self) -> dict | None:
        return load_finished(self.out)

    def check(self, arguments: dict, overwrite: bool) -> dict | None:
        """The arguments of the run already here, if it may go on.

        Returns:
            The recorded arguments (equal to `arguments`), or None for a
            fresh start (nothing recorded, or `overwrite`, which clears it).

        Raises:
            ValueError: if a run with other arguments is here.
        """
        if overwrite:
            self.clear()
            return None
        saved = self.saved_arguments()
        if saved is not None and saved != arguments:
            state = "finished" if self.finished() is not None else "unfinished"
            raise ValueError(
                f"{self.out} holds a {state} run with other arguments "
                f"({describe_changes(saved, arguments)}). Rerun with the same "
                "arguments to resume it, choose another output folder, or "
                "pass overwrite=True (--overwrite) to start afresh."
            )
        return saved

    def start(self, arguments: dict) -> None:
        """Begins a fresh run: clears leftovers, then records `arguments`."""
        # A folder without run.json holds no resumable state: anything in it
        # under our names is a leftover that would mix into this run.
        self.clear()
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "run.json", arguments)

    def clear(self) -> None:
        """Deletes every file and folder a run writes, and nothing else."""
        for name in self.files:
            (self.out / name).unlink(missing_ok=True)
        if self.out.is_dir():
            for partial in self.out.glob("*.partial*"):  # an interrupted write
                partial.unlink()
        for name in RUN_DIRS:
            shutil.rmtree(self.out / name, ignore_errors=True)

    def read_vocabulary(self) -> list[str] | None:
        path = self.out / "vocabulary.txt"
        if not path.is_file():
            return None  # killed before it was written: adapt again
        # Not splitlines(): it also splits at U+2028 and friends, which may
        # sit inside a token. Tokens never hold "\n" (the vectorizer splits
        # there).
        return path.read_text(encoding="utf-8").split("\n")

    def write_vocabulary(self, words: Iterable[str]) -> None:
        write_text(self.out / "vocabulary.txt", "\n".join(str(w) for w in words))

    def history(self) -> list[dict[str, float]]:
        return read_history(self.out)

    def trim_history(self, done: int) -> None:
        trim_history(self.out / "history.csv", done)

    def backup_epoch(self) -> int:
        """Finished epochs recorded by BackupAndRestore (0 without a backup)."""
        info = read_json(self.backup / "training_metadata.json")
        return int(info["epoch"]) if info else 0

    def backup_epochs(self) -> tuple[int, int]:
        """Finished epochs in the backup and in its previous copy (-1: none)."""
        previous = read_json(self.backup / "training_metadata.json.bkp")
        return self.backup_epoch(), int(previous["epoch"]) if previous else -1

    def restore_previous_backup(self) -> None:
        """Makes BackupAndRestore's previous copy (`double_checkpoint`) current."""
        # The weights first: the metadata's epoch says which state it is.
        for name in ("latest.weights.h5", "training_metadata.json"):
            copy_atomically(self.backup / f"{name}.bkp", self.backup / name)

    def finish(self, metrics: dict) -> None:
        """Marks the run finished: metrics.json, then the backup goes."""
        write_json(self.out / "metrics.json", metrics)
        shutil.rmtree(self.backup, ignore_errors=True)

    def discard(self) -> None:
        """Deletes the whole folder (a non-chief worker's own copy)."""
        shutil.rmtree(self.out, ignore_errors=True)
