"""`tf.distribute` strategies by name, the global batch split across their
replicas, and `Distribution`: what a run needs to know of its strategy."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recurrent_zoo.distribute.cluster import (
    DEFAULT_COLLECTIVE_TIMEOUT_S,
    STRATEGIES,
    ClusterError,
    ClusterTask,
    cluster_from_environment,
)
from recurrent_zoo.distribute.workarounds import (
    distribute_text_dataset,
    enable_memory_growth,
    multi_worker_safe,
    string_input_safe,
)


def make_strategy(
    name: str,
    *,
    collective_timeout: float = DEFAULT_COLLECTIVE_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """The `tf.distribute` strategy called `name`, or None for "default".

    Must run before TensorFlow first uses a device: it sets the GPUs to grow
    their memory, and a multi-worker strategy must configure the process's
    collective ops before any op runs.

    Args:
        name: one of `STRATEGIES`.
        collective_timeout: for "multiworker", seconds any collective waits
            for the other workers before failing.
        environ: for "multiworker", the environment holding `TF_CONFIG`
            (default `os.environ`; TensorFlow itself reads `os.environ`).

    Returns:
        None, a `MirroredStrategy` or a `MultiWorkerMirroredStrategy`.

    Raises:
        ValueError: on an unknown name, a bad timeout, or for "multiworker"
            a missing or malformed `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "default":
        return None
    import tensorflow as tf

    if name == "mirrored":
        enable_memory_growth()
        # One replica per GPU. Without GPUs, the logical CPU devices: one,
        # unless the process split its CPU (as the tests do).
        devices = tf.config.list_logical_devices("GPU")
        devices = devices or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if not collective_timeout > 0:
        raise ValueError(
            f"collective_timeout must be positive seconds, got {collective_timeout!r}"
        )
    if cluster_from_environment(environ) is None:
        raise ValueError(
            "strategy 'multiworker' needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}} '
            "(the same cluster on every machine, each with its own index)"
        )
    enable_memory_growth()
    multi_worker_safe()
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=float(collective_timeout)
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as err:
        raise RuntimeError(
            f"{err} -- the multi-worker strategy must be created before "
            "TensorFlow runs anything in this process (start a new process)"
        ) from err


def per_replica_batch_size(batch_size: int, replicas: int) -> int:
    """Each replica's share of a global batch.

    Args:
        batch_size: the global batch: examples per training step, over all
            replicas.
        replicas: replicas in sync (`strategy.num_replicas_in_sync`).

    Returns:
        `batch_size // replicas`.

    Raises:
        ValueError: unless `batch_size` is a positive multiple of `replicas`
            (uneven parts would weigh some examples more than others).
    """
    if batch_size < 1 or batch_size % replicas:
        lower = max(replicas, batch_size - batch_size % replicas)
        raise ValueError(
            f"batch_size {batch_size} is the global batch, split evenly across "
            f"{replicas} replicas: it must be a multiple of {replicas} "
            f"(e.g. {lower} or {lower + replicas})"
        )
    return batch_size // replicas


@dataclass
class Distribution:
    """How one training process is placed: a strategy and its role.

    Attributes:
        name: "default", "mirrored", "multiworker", or the class name of a
            strategy passed in.
        strategy: the `tf.distribute` strategy, or None for "default".
        task: this process's cluster task, for several workers; else None.
    """

    name: str
    strategy: Any = None
    task: ClusterTask | None = None

    @classmethod
    def create(
        cls,
        strategy: Any = "default",
        collective_timeout: float = DEFAULT_COLLECTIVE_TIMEOUT_S,
    ) -> Distribution:
        """From a name in `STRATEGIES` (see `make_strategy`), a strategy
        instance, or None (the same as "default")."""
        if strategy is None or isinstance(strategy, str):
            name = strategy or "default"
            instance = make_strategy(name, collective_timeout=collective_timeout)
        else:
            instance = strategy
            name = _strategy_name(instance)
        task = _cluster_task(instance)
        if task is not None:
            multi_worker_safe()
        return cls(name, instance, task)

    @property
    def replicas(self) -> int:
        """Replicas in sync, over all workers."""
        return 1 if self.strategy is None else self.strategy.num_replicas_in_sync

    @property
    def workers(self) -> int:
        return 1 if self.task is None else self.task.num_workers

    @property
    def is_chief(self) -> bool:
        return self.task is None or self.task.is_chief

    @property
    def multi_worker(self) -> bool:
        return self.workers > 1

    def output_dir(self, out: str | os.PathLike[str]) -> Path:
        """`out` for the chief (or a single process), else the worker's own."""
        return Path(out) if self.task is None else self.task.output_dir(out)

    def scope(self) -> contextlib.AbstractContextManager:
        """The strategy's scope (nothing for "default"): build and compile
        the model in it, so that its variables are mirrored."""
        if self.strategy is None:
            return contextlib.nullcontext()
        return self.strategy.scope()

    def distribute(self, dataset: Any) -> Any:
        """`distribute_text_dataset` with this strategy."""
        return distribute_text_dataset(self.strategy, dataset)

    def prepare(self, model: Any) -> Any:
        """`string_input_safe`: the model, made to train under the strategy."""
        return string_input_safe(model)

    def describe(self) -> dict:
        """A JSON record: strategy, replicas, workers, this task."""
        record: dict[str, Any] = {
            "strategy": self.name,
            "replicas": self.replicas,
            "workers": self.workers,
        }
        if self.task is not None:
            record["task"] = self.task.name
            record["chief"] = self.task.is_chief
        return record

    def gather(self, values: Sequence[float]) -> list[tuple[float, ...]]:
        """Every worker's `values`, in worker order: a collective, so every
        worker must call it at the same point. Exact for integers below 2**53.

        Returns:
            One tuple per worker (`[tuple(values)]` in a single process).
        """
        if not self.multi_worker:
            return [tuple(float(v) for v in values)]
        import tensorflow as tf

        row = tf.constant([[float(v) for v in values]], tf.float64)
        with translate_cluster_errors(self):
            local = self.strategy.experimental_distribute_values_from_function(
                lambda context: tf.identity(row)
            )
            rows = self.strategy.gather(local, axis=0).numpy()
        # One row per replica; a worker's replicas all hold its row.
        per_worker = len(rows) // self.workers
        return [tuple(float(v) for v in r) for r in rows[::per_worker]]


def _strategy_name(strategy: Any) -> str:
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multiworker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return type(strategy).__name__


def _cluster_task(strategy: Any) -> ClusterTask | None:
    """The cluster task a multi-worker strategy was set up with, else None."""
    import tensorflow as tf

    # Other strategies may read TF_CONFIG too, but train on this machine only.
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return None
    spec = resolver.cluster_spec().as_dict()
    if not spec:
        return None
    jobs = {
        job: tuple(addresses.values() if isinstance(addresses, dict) else addresses)
        for job, addresses in spec.items()
    }
    return ClusterTask(jobs, resolver.task_type, int(resolver.task_id or 0))


# TensorFlow reports a lost or stuck peer as one of these, depending on who
# noticed first (heartbeats, the collective's timeout, a broken connection).
def _cluster_error_types() -> tuple[type[BaseException], ...]:
    import tensorflow as tf

    return (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.FailedPreconditionError,
        tf.errors.InternalError,
    )


@contextlib.contextmanager
def translate_cluster_errors(distribution: Distribution) -> Iterator[None]:
    """Turns TensorFlow's errors about a lost peer into a `ClusterError`
    that says what to do, when several workers train; else does nothing."""
    if not distribution.multi_worker:
        yield
        return
    try:
        yield
    except _cluster_error_types() as err:
        raise ClusterError(
            f"{distribution.task.name} lost the cluster ({type(err).__name__}: "
            f"{_gist(err)}). A worker died, hung or could not be reached. "
            "Restart the same command on every worker: training resumes after "
            "the last epoch they all finished."
        ) from err


def _gist(error: BaseException) -> str:
    """The line of a TensorFlow error that says what happened to the peer.

    Its message starts with "Graph execution error:" and the Python stack
    where the failing op was defined; the cause is further down.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for clue in ("unhealthy", "aborted", "timed out", "deadline", "connect"):
        for line in lines:
            if clue in line.lower():
                # Without TensorFlow's "{{function_node ...}}" prefix.
                return re.sub(r"\{\{.*?\}\}\s*", "", line)[:300]
    return lines[0][:300] if lines else "no message"
