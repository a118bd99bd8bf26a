"""Several workers, one run: agreeing on where to resume and what to read.

Under a multi-worker strategy every worker runs the same `train` call on its
own copy of the run (the chief's folder is the run itself; the others keep
theirs in `workertemp_<index>`). Before anything trains, the workers meet
twice: once to agree on the resume point (`agree_on_state`), once to check
they read the same data (`agree_on_data`). Both are collectives: every
worker calls each once.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from recurrent_zoo.distribute import ClusterError, Distribution
from recurrent_zoo.training.callbacks import stops_early
from recurrent_zoo.training.run import Run

__all__ = ["agree_on_data", "agree_on_state", "worker_stub"]


def agree_on_state(
    dist: Distribution,
    out: Path,
    mistake: ValueError | None,
    saved: dict | None,
    finished: dict | None,
    epochs: int,
    patience: int,
    verbose: int,
    monitor: str = "val_loss",
) -> str:
    """Brings every worker to the same resume point before anything trains.

    A worker that refused to start makes all of them fail (rather than the
    others waiting for it). If the chief's run is finished, or has nothing
    left to train, the others have nothing to do. Otherwise all resume from
    the fewest epochs any worker backed up: a kill between two workers'
    end-of-epoch backups leaves them one epoch apart, and the one ahead
    still holds that epoch's state in its previous backup.

    Returns:
        "stop" when this worker is done (the chief then returns its
        finished run; it only evaluates when it has nothing left to train
        but has not finished), else "go".

    Raises:
        ValueError: `mistake`, this worker's own refusal.
        ClusterError: if another worker refused, or the backups cannot be
            brought to one epoch.
    """
    run = Run(out)
    done, previous, stopped = 0, -1, False
    if saved is not None and mistake is None:
        done, previous = run.backup_epochs()
        run.trim_history(done)
        stopped = stops_early(run.history(), patience, monitor)
    rows = dist.gather(
        [
            dist.is_chief,
            mistake is not None,
            saved is not None and finished is not None,
            stopped or done >= epochs,
            done,
            previous,
        ]
    )
    if mistake is not None:
        raise mistake
    if any(row[1] for row in rows):
        raise ClusterError(
            "another worker refused to start (its output says why); fix it and "
            "rerun the same command on every worker"
        )
    chief = next(row for row in rows if row[0])
    if chief[2]:
        return "stop"
    if chief[3]:
        return "go" if dist.is_chief else "stop"
    target = int(min(row[4] for row in rows))
    if any(target not in (row[4], row[5]) for row in rows):
        held = sorted({int(row[4]) for row in rows})
        raise ClusterError(
            f"the workers' backups hold different numbers of finished epochs "
            f"({held}) and cannot be brought to one. A worker without its "
            "folder (e.g. a replaced machine) needs a copy of the chief's "
            "run.json, vocabulary.txt, history.csv and backup/ in its "
            "workertemp_<index> folder of the run folder; or pass --overwrite "
            "(overwrite=True) on every worker to start afresh"
        )
    if done != target:
        run.restore_previous_backup()
        run.trim_history(target)
        if verbose:
            print(
                f"{dist.task.name}: back to epoch {target}, where the other "
                "workers' backups stopped.",
                flush=True,
            )
    return "go"


def agree_on_data(
    dist: Distribution,
    vocabulary: list[str],
    train_size: int,
    validation_size: int,
    steps: int,
) -> None:
    """Fails unless every worker has the same vocabulary and data sizes.

    Workers shard batches of a pipeline each runs in full: on different
    data (another corpus copy, another `--data`), the parts would not add
    up to batches, and the step counts might not even match.
    """
    words = "\n".join(str(w) for w in vocabulary)
    mine = [zlib.crc32(words.encode("utf-8")), train_size, validation_size, steps]
    rows = dist.gather(mine)
    if len(set(rows)) > 1:
        seen = "; ".join(
            f"vocabulary crc32 {int(r[0])}, {int(r[1])} training and {int(r[2])} "
            f"validation texts, {int(r[3])} steps"
            for r in rows
        )
        raise ClusterError(
            "the workers read different data; every machine needs the same "
            f"corpus and the same command ({seen})"
        )


def worker_stub(arguments: dict[str, Any], dist: Distribution) -> dict:
    """What a non-chief worker returns when it had nothing to train."""
    return {
        "task": arguments["task"],
        "corpus": arguments["corpus"],
        "arguments": arguments,
        "distribution": dist.describe(),
    }
