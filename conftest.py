"""Root-level pytest hooks: when the notebooks run; `alone` needs `slow`."""

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


def _names_the_notebooks(args: list[str]) -> bool:
    paths = (Path(arg.split("::")[0]).resolve() for arg in args)
    return any(path == NOTEBOOKS or NOTEBOOKS in path.parents for path in paths)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # `alone` only has a meaning within the slow step (.ci/run): outside it
    # a test would run beside another in the default `-n 2` run.
    loose = [
        item.nodeid
        for item in items
        if item.get_closest_marker("alone") and not item.get_closest_marker("slow")
    ]
    if loose:
        raise pytest.UsageError(f"marked `alone` but not `slow`: {', '.join(loose)}")
    # The guided tour runs whole notebooks on real data (about 3.5 minutes
    # together): in CI's slow step, beside the other end-to-end runs, so the
    # default run stays near 15 minutes. Named on the command line
    # (`pytest notebooks`), they run as asked. tryfirst: before `-m` deselects.
    named = [a for a in config.invocation_params.args if not str(a).startswith("-")]
    if _names_the_notebooks([str(a) for a in named]):
        return
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
