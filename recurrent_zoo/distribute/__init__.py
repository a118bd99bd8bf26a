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

from recurrent_zoo.distribute.cluster import (
    DEFAULT_COLLECTIVE_TIMEOUT_S,
    STRATEGIES,
    ClusterError,
    ClusterTask,
    cluster_from_environment,
    parse_tf_config,
)
from recurrent_zoo.distribute.devices import (
    DevicePlan,
    plan_devices,
    role,
    trial_devices,
)
from recurrent_zoo.distribute.strategies import (
    Distribution,
    make_strategy,
    per_replica_batch_size,
    translate_cluster_errors,
)
from recurrent_zoo.distribute.workarounds import (
    distribute_text_dataset,
    enable_memory_growth,
    multi_worker_safe,
    string_input_safe,
)

__all__ = [
    "DEFAULT_COLLECTIVE_TIMEOUT_S",
    "STRATEGIES",
    "ClusterError",
    "ClusterTask",
    "DevicePlan",
    "Distribution",
    "cluster_from_environment",
    "distribute_text_dataset",
    "enable_memory_growth",
    "make_strategy",
    "multi_worker_safe",
    "parse_tf_config",
    "per_replica_batch_size",
    "plan_devices",
    "role",
    "string_input_safe",
    "translate_cluster_errors",
    "trial_devices",
]
