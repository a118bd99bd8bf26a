"""The cluster a run trains on: `TF_CONFIG` parsed and checked, each task's
role and folder, and the error a failing cluster raises."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRATEGIES = ("default", "mirrored", "multiworker")

# Every collective (a gradient all-reduce, a metric sum) waits at most this
# long for the other workers. A killed worker is normally noticed sooner,
# through the coordination service's heartbeats (seconds); this bounds the
# cases heartbeats miss, e.g. a peer alive but stuck. Long enough for one
# worker to finish an epoch's checkpoint while the others wait.
DEFAULT_COLLECTIVE_TIMEOUT_S = 600.0

# The jobs a synchronous data-parallel cluster has; "ps" and "evaluator"
# belong to other strategies and workflows.
_JOBS = ("chief", "worker")


class ClusterError(RuntimeError):
    """A worker of the cluster failed, could not be reached, or disagrees with
    the others. Rerunning the same command on every worker resumes the run."""


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a multi-worker cluster, from `TF_CONFIG`.

    Attributes:
        jobs: job name ("chief", "worker") -> the tasks' "host:port" addresses.
        task_type: this task's job.
        task_index: this task's index in its job.
    """

    jobs: Mapping[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        """All tasks that train: the chief and the workers."""
        return sum(len(addresses) for addresses in self.jobs.values())

    @property
    def is_chief(self) -> bool:
        """TensorFlow's rule: the "chief" task, or worker 0 if there is none."""
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_index == 0

    @property
    def name(self) -> str:
        """e.g. "worker 1" or "chief"."""
        if self.task_type == "chief":
            return "chief"
        return f"{self.task_type} {self.task_index}"

    def output_dir(self, out: str | os.PathLike[str]) -> Path:
        """Where this task writes: `out` for the chief, else a folder of its own.

        Non-chief workers must not write the run's files (several would
        race for them on a shared file system), but they need a state of
        their own to resume from: `out/workertemp_<index>` (Keras 2's
        naming), deleted when the run has finished.
        """
        out = Path(out)
        return out if self.is_chief else out / f"workertemp_{self.task_index}"


def parse_tf_config(text: str) -> ClusterTask:
    """Reads and checks a `TF_CONFIG` value.

    Args:
        text: JSON like `{"cluster": {"worker": ["host1:12345",
            "host2:12345"]}, "task": {"type": "worker", "index": 0}}`.

    Returns:
        The cluster and this task.

    Raises:
        ValueError: naming the offending value, if `text` is not JSON, lacks
            "cluster" or "task", names a job other than "chief" and "worker",
            an address that is not "host:port", more than one chief, or a
            task that is not in the cluster.
    """
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not JSON ({err.msg}): {text!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object, got {text!r}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(
            'TF_CONFIG needs "cluster": {"worker": ["host:port", ...]}, got '
            f"{cluster!r}"
        )
    if not isinstance(task, dict):
        raise ValueError(
            f'TF_CONFIG needs "task": {{"type": "worker", "index": 0}}, got {task!r}'
        )
    jobs: dict[str, tuple[str, ...]] = {}
    for job, addresses in cluster.items():
        if job not in _JOBS:
            raise ValueError(
                f"TF_CONFIG names the job {job!r}; multi-worker training takes "
                f"only {' and '.join(repr(j) for j in _JOBS)}"
            )
        if isinstance(addresses, str) or not isinstance(addresses, list):
            raise ValueError(
                f'TF_CONFIG cluster "{job}" must be a list of "host:port", '
                f"got {addresses!r}"
            )
        if not addresses:
            raise ValueError(f'TF_CONFIG cluster "{job}" lists no address')
        for address in addresses:
            _check_address(job, address)
        jobs[job] = tuple(addresses)
    if len(jobs.get("chief", ())) > 1:
        raise ValueError(f"TF_CONFIG lists {len(jobs['chief'])} chiefs; at most 1")
    every = [a for addresses in jobs.values() for a in addresses]
    repeated = sorted({a for a in every if every.count(a) > 1})
    if repeated:
        raise ValueError(f"TF_CONFIG lists the same address twice: {repeated}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in jobs:
        raise ValueError(
            f'TF_CONFIG task "type" must be one of the cluster\'s jobs '
            f"{sorted(jobs)}, got {task_type!r}"
        )
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f'TF_CONFIG task "index" must be an integer, got {index!r}')
    if not 0 <= index < len(jobs[task_type]):
        raise ValueError(
            f'TF_CONFIG task "index" {index} is out of range: the cluster lists '
            f'{len(jobs[task_type])} "{task_type}" address(es)'
        )
    return ClusterTask(jobs, task_type, index)


def _check_address(job: str, address: Any) -> None:
    host, port = "", ""
    if isinstance(address, str):
        host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f'TF_CONFIG cluster "{job}" address must be "host:port", got {address!r}'
        )


def cluster_from_environment(
    environ: Mapping[str, str] | None = None,
) -> ClusterTask | None:
    """The cluster `TF_CONFIG` describes, or None when it is unset or empty.

    Args:
        environ: the environment to read (default `os.environ`).

    Raises:
        ValueError: if `TF_CONFIG` is malformed (see `parse_tf_config`).
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    return parse_tf_config(text) if text.strip() else None
