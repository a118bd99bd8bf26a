"""Running the notebooks under pytest (nbmake): the same real-data rule as tests/.

The notebooks read `aclImdb.tar.gz` and `20news-bydate.tar.gz` from the folder
named by `RECURRENT_ZOO_DATA`, by default `../shared/data` beside the
repository. Without it they are skipped with the reason, like the tests that
need real data, unless `RECURRENT_ZOO_REQUIRE_DATA=1` (CI), which turns the
skip into a failure. Each notebook is executed in its own kernel with the
notebook's folder as working directory; the notebooks write only into
temporary folders, and nbmake leaves the `.ipynb` files untouched unless
`--overwrite` is given.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    data = Path(os.environ.get("RECURRENT_ZOO_DATA", REPO_ROOT.parent / "shared/data"))
    # The kernels inherit this environment but run in notebooks/: a relative
    # path given to pytest must not be read relative to that folder.
    os.environ["RECURRENT_ZOO_DATA"] = str(data.resolve())
    # CI must never pass by skipping: there a missing folder fails the notebooks.
    if data.is_dir() or os.environ.get("RECURRENT_ZOO_REQUIRE_DATA") == "1":
        return
    skip = pytest.mark.skip(
        reason=f"real-data folder not found ({data}): set RECURRENT_ZOO_DATA or "
        "place aclImdb.tar.gz and 20news-bydate.tar.gz in ../shared/data"
    )
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(skip)
