"""Training across the GPUs of a machine, or across machines, with tf.distribute.

Three strategies, by name (`recurrent-zoo train --strategy NAME`,
`train(..., strategy=NAME)`):

* "default": no strategy; TensorFlow places the model on the GPU if there
  is one, else on the CPU.
* "mirrored": `tf.distribute.MirroredStrategy`, one replica per GPU of this
  machine (on a machine without GPUs, one per logical CPU device, which is
  one unless configured otherwise).
* "multiworker": `tf.distribute.MultiWorkerMirroredStrategy`, one replica
  per GPU (or one per CPU-only machine) of every machine named in
  `TF_CONFIG`; every machine runs the same command.

The rules that hold for all three:

* The batch size is the global batch: each step's batch is split evenly
  across all replicas (so it must be a multiple of their number), and the
  gradients of the parts are averaged. The learning rate is never scaled:
  one command trains the same way on 1 or 8 replicas.
* Every worker runs the whole input pipeline, with the same seed, and keeps
  its own part of every batch (`AutoShardPolicy.DATA`; file sharding does
  not apply to in-memory texts): each example is seen once per epoch by
  exactly one replica.
* The chief (the "chief" task, else worker 0) writes the run's outputs;
  every other worker keeps its state in `OUT/workertemp_<index>`, which it
  deletes once the run has finished.

It also holds the workarounds Keras 3 needs to train the raw-strings-in
models here under a strategy (`string_input_safe`, and for several workers
`multi_worker_safe`), shared with `recurrent_zoo.tuning`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_COLLECTIVE_TIMEOUT_S",
    "STRATEGIES",
    "ClusterError",
    "ClusterTask",
    "Distribution",
    "cluster_from_environment",
    "distribute_text_dataset",
    "enable_memory_growth",
    "make_strategy",
    "multi_worker_safe",
    "parse_tf_config",
    "per_replica_batch_size",
    "string_input_safe",
]

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


# ------------------------------------------------------------------ TF_CONFIG


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


# ------------------------------------------------------------------ strategies


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


# ------------------------------------------------- Keras 3 workarounds, data


def enable_memory_growth(config: Any = None) -> list[str]:
    """Lets TensorFlow take GPU memory as needed instead of all of it.

    Several workers may share a GPU, and every trial builds a model of a
    different size; grabbing the whole memory up front would starve the
    others. Must run before TensorFlow first touches a GPU; later calls
    leave the setting as it was.

    Args:
        config: the `tf.config` module, or a stand-in for tests.

    Returns:
        The names of the GPUs set to grow (empty without a GPU, or when
        TensorFlow was already initialized).
    """
    if config is None:
        import tensorflow as tf

        config = tf.config
    grown = []
    for gpu in config.list_physical_devices("GPU"):
        try:
            config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Already initialized: the devices keep their current setting.
            return []
        grown.append(gpu.name)
    return grown


def distribute_text_dataset(strategy: Any, dataset: Any) -> Any:
    """Splits a dataset of raw-text batches across the strategy's replicas.

    Keras would distribute it itself, but prefetching to the devices: string
    tensors cannot live in GPU memory. The model's first layer turns the
    strings into ids on the host anyway, so batches are kept there.

    Across workers, each one runs the whole pipeline and keeps its part of
    every batch (`AutoShardPolicy.DATA`): the texts are in memory, so there
    are no files to shard by. For the parts to make up each batch exactly
    once, every worker must shuffle alike, i.e. with the same seed.

    Args:
        strategy: a `tf.distribute` strategy, or None.
        dataset: a `tf.data.Dataset` of `(text, label)` batches.

    Returns:
        The dataset itself without a strategy, else a `DistributedDataset`
        (Keras accepts both in `fit`, `evaluate` and `validation_data`).
    """
    if strategy is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    inputs = tf.distribute.InputOptions(experimental_fetch_to_device=False)
    return strategy.experimental_distribute_dataset(
        dataset.with_options(options), inputs
    )


def string_input_safe(model: Any) -> Any:
    """Lets a raw-strings-in model train under a `tf.distribute` strategy.

    Under a strategy, Keras 3's TensorFlow trainer builds the model's
    metrics and optimizer from a first batch it averages across replicas
    (`_maybe_symbolic_build` reduces it with "MEAN"), which fails on string
    inputs ("AddN ... string is not in the list of allowed values"; keras
    issue #21172). Only the shapes and dtypes of that batch matter, so this
    model uses the first replica's part instead. Models outside a strategy
    are returned unchanged.

    Args:
        model: a Keras model built in (or out of) a strategy scope.

    Returns:
        The same model.
    """
    import tensorflow as tf

    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None or not hasattr(model, "_symbolic_build"):
        return model

    def maybe_symbolic_build(iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda x: strategy.experimental_local_results(x)[0],
                    next(batches),
                )
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    # Set on the instance, past Keras's attribute tracking: a plain function,
    # not state, and not saved with the model.
    object.__setattr__(model, "_maybe_symbolic_build", maybe_symbolic_build)
    return model


def multi_worker_safe() -> None:
    """Lets Keras 3 `fit` and `evaluate` run across several workers.

    Keras 3's TensorFlow trainer averages each step's logged values across
    workers with `strategy.reduce("MEAN", value, axis=0)`, which fails on
    the scalar losses and metrics ("Invalid reduction dimension 0 for input
    with 0 dimensions"; tensorflow/tensorflow#72388). For multi-worker
    strategies this takes the mean over the process's own replicas instead;
    everything else goes to Keras's function unchanged.

    What changes: the per-step values (the progress bar, `on_train_batch_end`)
    are this worker's running means. What does not: at each epoch's end
    Keras reads the metric variables across all replicas, so the epoch logs
    (History, CSVLogger, EarlyStopping, `validation_data`, `evaluate`) are
    over all workers' data and the same on every worker. Idempotent;
    affects only multi-worker strategies.
    """
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "_recurrent_zoo_patched", False):
        return

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction not in ("auto", "mean") or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return original(values, strategy, reduction)

        def local_mean(value: Any) -> Any:
            if isinstance(value, tf.distribute.DistributedValues):
                parts = strategy.experimental_local_results(value)
                return tf.reduce_mean(tf.stack(parts), axis=0)
            return value

        return tree.map_structure(local_mean, values)

    reduce_per_replica._recurrent_zoo_patched = True
    # Looked up as a module global when Keras traces its step functions.
    trainer.reduce_per_replica = reduce_per_replica
