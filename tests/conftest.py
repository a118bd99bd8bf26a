"""Shared fixtures: the real-data folder and a quiet, deterministic Keras."""

import gc
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path | None:
    """The folder holding `aclImdb.tar.gz` and `20news-bydate.tar.gz`.

    `RECURRENT_ZOO_DATA` overrides the default `../shared/data` (beside the
    repository root). Returns None when the folder is absent.
    """
    path = Path(os.environ.get("RECURRENT_ZOO_DATA", REPO_ROOT.parent / "shared/data"))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    if path is None:
        reason = (
            "real-data folder not found: set RECURRENT_ZOO_DATA or place "
            "aclImdb.tar.gz and 20news-bydate.tar.gz in ../shared/data"
        )
        # CI must never pass by skipping the tests that read real data.
        if os.environ.get("RECURRENT_ZOO_REQUIRE_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(1234)
    yield
    # Without Keras's full garbage collection: over a heap holding TensorFlow
    # it took up to seconds per test (109 layer tests on a quiet machine:
    # 40 s with it, 18-20 s without). Python's own collector still runs, and
    # each module ends with a full collection (below).
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(autouse=True, scope="module")
def _collect_after_each_module():
    yield
    gc.collect()
