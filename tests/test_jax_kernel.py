"""`LayerNormLSTM`'s JAX kernel computes what Keras's generic loop computes.

Keras picks its backend once per process, so the checks run in a JAX child
process (`jax_kernel_worker.py`); skipped where JAX is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # a JAX process compiling ~25 layers: over a minute
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None, reason="jax is not installed"
    ),
]

WORKER = Path(__file__).resolve().parent / "jax_kernel_worker.py"
# XLA's CPU code (vector width, fusion, reduction order) differs from one
# machine to the next: the same float32 cases differed by at most 5e-6 on
# the development machine and by 1.2e-5 on CI's. A wrong step (a gate,
# a statistic, a mask) is off by orders of magnitude more.
OUTPUT_TOL = 1e-4
GRADIENT_TOL = 1e-4


@pytest.fixture(scope="module")
def report():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, str(WORKER)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_outputs_and_gradients_equal_the_generic_loops(report):
    assert len(report["cases"]) == 21
    for name, case in report["cases"].items():
        assert case["outputs"] < OUTPUT_TOL, name
        assert case["gradients"] < GRADIENT_TOL, name
        # The inputs, h_0, c_0 and the layer's seven weights.
        assert case["gradient_count"] == 10, name


def test_the_kernel_runs_exactly_where_it_applies(report):
    assert report["kernel_ran"] == {
        "kernel": True,
        "plain": False,  # layer_norm=False: Keras's loop, as keras.layers.LSTM
        "relu": False,
        "recurrent dropout": False,
        "recurrent dropout, inference": True,
        "dropout": True,  # input dropout is applied before the kernel
        "unroll": False,
    }


def test_mixed_precision_returns_the_compute_dtype(report):
    assert report["mixed"] == {"dtype": "bfloat16", "finite": True}


def test_a_jitted_fit_lowers_the_loss(report):
    assert report["fit"]["last"] < 0.5 * report["fit"]["first"]
