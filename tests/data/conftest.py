"""Data tests build no models: skip the root conftest's Keras session reset.

`keras.backend.clear_session()` runs a full garbage collection (about a
second with TensorFlow loaded) after every test; these tests only read files.
"""

import pytest


@pytest.fixture(autouse=True)
def _seed_and_clear():
    yield
