"""The child entry point of `gpu_suite.py`'s parts, and what they share.

    python benchmarks/gpu_suite_parts.py '{"part": "fit", "results": ..., ...}'

`gpu_suite.py` starts one child per part so that it can stop a part at its
time cap (a hung XLA compile or a stuck kernel can't be interrupted from
Python), and so that a crash or an out-of-memory error in one part leaves
the others running. A child writes `parts/<part>.json` after every result
(`PartWriter`), so whatever it measured before being stopped survives.

Parts (`PARTS`), each in a module of its own, imported only by the child
that runs it:

- `layer_speed` (`gpu_suite_speed.py`): `layer_speed.measure_pair` for the
  LSTM, GRU, SimpleRNN and Bidirectional pairs at two shapes, with XLA off and on,
  and at the base shape under mixed_float16.
- `fit` (`gpu_suite_fit.py`): a short `fit` of the prebuilt sentiment model
  (IMDB, or a synthetic corpus when the archive is absent): seconds per
  epoch, steps per second.
- `export` (`gpu_suite_export.py`): small models trained here (on the GPU),
  exported with `model.export`, scanned for `CudnnRNN*` ops and served by a
  process that sees no GPU and can't import recurrent_zoo.

Exit status of a child: 0 when the part ran to its end (its JSON status says
ok, partial or failed), anything else a crash.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Part name: (module, function). The part modules import `PartWriter` from
# here, so `child_main` imports them only when it runs one.
PARTS = {
    "layer_speed": ("gpu_suite_speed", "part_layer_speed"),
    "fit": ("gpu_suite_fit", "part_fit"),
    "export": ("gpu_suite_export", "part_export"),
}


class PartWriter:
    """A part's results, rewritten to `parts/<part>.json` on every change."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.path = Path(spec["results"]) / "parts" / f"{spec['part']}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {
            "part": spec["part"],
            "status": "running",
            "rows": [],
            "skipped": [],
            "errors": [],
            "failures": [],
        }
        self.save()

    def time_left(self) -> float:
        """Seconds to the part's soft deadline (the parent kills it a little
        later)."""
        return self.spec["deadline"] - time.time()

    def add(self, key: str, value: Any) -> None:
        self.data[key].append(value)
        self.save()

    def set(self, **values: Any) -> None:
        self.data.update(values)
        self.save()

    def save(self) -> None:
        # Write-then-rename: a kill mid-write leaves the previous version.
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=_jsonable) + "\n")
        os.replace(tmp, self.path)


def _jsonable(value: Any) -> Any:
    """NumPy scalars as numbers; anything else JSON lacks (paths) as text."""
    return value.item() if isinstance(value, np.generic) else str(value)


def _error_line(error: BaseException) -> str:
    """The error in one line for the JSON; its traceback goes to the log."""
    traceback.print_exc()
    return f"{type(error).__name__}: {' '.join(str(error).split())}"[:400]


def child_main(spec_json: str) -> int:
    """Run one part; 0 when it ran to its end, whatever its status (an
    uncaught exception exits 1: a crash)."""
    spec = json.loads(spec_json)
    writer = PartWriter(spec)
    started = time.monotonic()
    module, function = PARTS[spec["part"]]
    getattr(importlib.import_module(module), function)(writer)
    if writer.data["status"] == "running":
        writer.data["status"] = "ok"
    writer.set(seconds=time.monotonic() - started)
    return 0


if __name__ == "__main__":
    # Run as `gpu_suite_parts`, not `__main__`: the part modules import this
    # module by its name, and must share its one copy.
    import gpu_suite_parts

    sys.exit(gpu_suite_parts.child_main(sys.argv[1]))
