"""Run a script where only what a server would have is importable.

Exported models must be served without recurrent_zoo or Keras: the
checks run their loading code in a fresh interpreter, isolated (`-I`: no
PYTHON* variables, no user site, not the repository on `sys.path`), from a
scratch folder, with a bare environment and no GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_clean(script: str, spec: dict[str, Any], folder: Path, timeout: int = 300):
    """Runs `script` with `json.dumps(spec)` as its argument from `folder`;
    the finished process (its exit status checked)."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", script, json.dumps(spec)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(folder),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result
