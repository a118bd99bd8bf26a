"""The dtype policy a run trains under (`train(dtype_policy=...)`).

A run's policy is global while it trains, as Keras's mixed precision is:
every layer built in the run computes in the policy's dtype and keeps its
variables in float32. The package's recurrence kernels keep their state,
statistics and gradient sums in float32 under any policy; under
"mixed_bfloat16" their matmuls take bfloat16 operands, which a CPU with
AMX (Intel Sapphire Rapids and later) and a GPU's tensor cores multiply
faster than float32 (`recurrent_zoo.layers.tf_kernel_parts.matmul_dtype`).

The policy is a way of training, not part of the model: the saved model's
configuration names no policy, so `keras.saving.load_model` returns a
float32 model (unless the loading process set a global policy itself).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from recurrent_zoo.catalog import DTYPE_POLICIES

__all__ = ["check_dtype_policy", "dtype_policy"]


def check_dtype_policy(name: str) -> str:
    """`name` if it is one of `DTYPE_POLICIES`, else a ValueError naming it."""
    if name not in DTYPE_POLICIES:
        raise ValueError(f"dtype_policy must be one of {DTYPE_POLICIES}, got {name!r}")
    return name


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy set to `name` inside the block, and the
    previous one restored after it (also when the block raises)."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(check_dtype_policy(name))
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
