"""Where trials run: this process's role in a search and the devices it uses.

Two independent kinds of distribution:

* Across processes or machines, keras-tuner's own chief/worker mode: every
  process runs the same command; `KERASTUNER_TUNER_ID` ("chief" for the
  one that holds the oracle, any other unique name for a worker),
  `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` (where the chief
  listens) make the workers ask the chief for trials over gRPC.
* Within one process, all GPUs of the machine: a `tf.distribute` strategy
  every trial's model is built and trained under.

The one device abstraction: training (`strategies.py`) and the tuner both
place work through this package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ROLE_VARIABLES = (
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
)


def role(environ: dict[str, str] | None = None) -> str:
    """This process's part in a search: "standalone", "chief" or "worker".

    Args:
        environ: the environment to read (default `os.environ`).

    Returns:
        "standalone" without `KERASTUNER_ORACLE_IP`; otherwise "chief" when
        `KERASTUNER_TUNER_ID` contains "chief" (keras-tuner's own rule),
        else "worker".

    Raises:
        ValueError: if `KERASTUNER_ORACLE_IP` is set without the port or the
            tuner id, or the port is not a number.
    """
    env = os.environ if environ is None else environ
    if "KERASTUNER_ORACLE_IP" not in env:
        return "standalone"
    missing = [name for name in ROLE_VARIABLES if not env.get(name)]
    if missing:
        raise ValueError(
            f"KERASTUNER_ORACLE_IP is set, so a distributed search needs "
            f"{', '.join(ROLE_VARIABLES)}; missing: {', '.join(missing)}"
        )
    if not env["KERASTUNER_ORACLE_PORT"].isdigit():
        raise ValueError(
            "KERASTUNER_ORACLE_PORT must be a port number, got "
            f"{env['KERASTUNER_ORACLE_PORT']!r}"
        )
    return "chief" if "chief" in env["KERASTUNER_TUNER_ID"] else "worker"


@dataclass(frozen=True)
class DevicePlan:
    """How each trial's model is placed.

    Attributes:
        kind: "mirrored" (one replica per device, gradients all-reduced) or
            "default" (TensorFlow's own placement: the GPU if there is one).
        devices: the devices trials use.
    """

    kind: str
    devices: tuple[str, ...]

    def describe(self) -> str:
        """A one-line account, e.g. "mirrored over GPU:0, GPU:1"."""
        # "/job:localhost/replica:0/task:0/device:GPU:0" -> "GPU:0"
        names = ", ".join(d.rsplit("device:", 1)[-1] for d in self.devices)
        if self.kind == "mirrored":
            return f"mirrored over {names} ({len(self.devices)} replicas)"
        return names if "GPU" in names else f"{names} (no GPU found)"

    def strategy(self) -> Any:
        """The `tf.distribute` strategy to give the tuner, or None.

        None for the default plan: a single GPU is used without a strategy,
        and keras-tuner then builds models outside any scope.
        """
        if self.kind != "mirrored":
            return None
        import tensorflow as tf

        return tf.distribute.MirroredStrategy(devices=list(self.devices))


def plan_devices(gpus: Sequence[str], cpu: str = "/device:CPU:0") -> DevicePlan:
    """Chooses the plan for a machine with these GPUs.

    Args:
        gpus: the visible GPUs' logical device names.
        cpu: the device named when there is no GPU.

    Returns:
        "mirrored" over all GPUs when there are several (a trial then uses
        the whole machine: batches are split across them), otherwise the
        default placement on the one GPU or on the CPU.
    """
    if len(gpus) > 1:
        return DevicePlan("mirrored", tuple(gpus))
    return DevicePlan("default", tuple(gpus) if gpus else (cpu,))


def trial_devices() -> DevicePlan:
    """The plan for the GPUs TensorFlow sees in this process.

    Set `CUDA_VISIBLE_DEVICES` to give processes sharing a machine their own
    GPUs (e.g. one per worker).
    """
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    return plan_devices(gpus)
