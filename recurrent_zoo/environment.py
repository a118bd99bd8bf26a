"""What ran a job: machine, devices and versions, for results files."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

__all__ = [
    "cores_text",
    "cpu_features",
    "cpu_steal_fraction",
    "machine_info",
    "read_cpu_times",
    "run_record",
]

# /proc/cpuinfo flags that change what a CPU's matmuls run on, widest last.
# Two hosts both named "AMD EPYC" (Zen 3 with AVX2, Zen 4 with AVX-512 and
# bfloat16) ranked the same layers differently (README, Speed and memory).
_VECTOR_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX512-BF16",
    "amx_bf16": "AMX-BF16",
}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_features(cpuinfo: str | None = None) -> str:
    """The CPU's vector extensions that matter for matmuls, e.g.
    "AVX2, AVX-512, AVX512-BF16"; "" where /proc/cpuinfo can't be read.

    Args:
        cpuinfo: the text of /proc/cpuinfo; None reads this machine's.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return ", ".join(v for k, v in _VECTOR_FLAGS.items() if k in flags)
    return ""


def cores_text(machine: dict) -> str:
    """ "2 cores; AVX2, AVX-512" for a results file's machine line (just
    "2 cores" for results recorded before `cpu_features` existed)."""
    features = machine.get("cpu_features")
    return f"{machine['cpu_count']} cores" + (f"; {features}" if features else "")


def machine_info() -> dict:
    """CPU, GPUs, Python/TensorFlow/Keras versions, and the path built-in
    recurrent layers take (cuDNN only exists with a GPU)."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_features": cpu_features(),
        "cpu_count": os.cpu_count(),
        "gpus": [g.name for g in gpus],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "builtin_path": "cuDNN" if gpus else "generic while_loop (no cuDNN on CPU)",
    }


def run_record(argv: list[str] | None = None) -> dict:
    """The command, UTC date and machine, to store next to a result."""
    argv = sys.argv if argv is None else argv
    words = ["python", *argv] if argv and argv[0].endswith(".py") else list(argv)
    return {
        "command": " ".join(words),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "machine": machine_info(),
    }


def read_cpu_times() -> list[int]:
    """The first eight `/proc/stat` cpu counters (zeros where unavailable)."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
    except (OSError, ValueError):
        return [0] * 8


def cpu_steal_fraction(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to other guests between reads."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    return delta[7] / max(sum(delta[:8]), 1)
