"""One module per `recurrent-zoo` subcommand.

Each command module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`, and is found by name: adding a command is adding a file.
They import TensorFlow and the package's heavy parts inside `run`, so
`recurrent-zoo --help` stays instant.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

# The order `recurrent-zoo --help` lists commands in; others follow by name.
_ORDER = (
    "train",
    "evaluate",
    "predict",
    "generate",
    "export",
    "tune",
    "bench",
    "demo",
)


def command_modules() -> dict[str, ModuleType]:
    """Subcommand name -> its module, in help order."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module
    rank = {name: i for i, name in enumerate(_ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0])))
