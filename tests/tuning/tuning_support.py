"""Helpers for the tuning tests: tiny searches run as real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# A model small enough that a trial is mostly graph tracing: 4-16 units,
# 8-16-wide embeddings, texts cut at 16 words (one length bucket, so one
# trace per trial), on 40 real reviews per class.
TINY = [
    "--train-per-class", "40",
    "--unit-choices", "4,8",
    "--embedding-dims", "8,16",
    "--vocabulary-size", "500",
    "--sequence-length", "16",
    "--attention-units", "4",
    "--batch-size", "16",
]  # fmt: skip


def tune_command(data: Path, directory: Path, *extra: str) -> list[str]:
    """`python -m recurrent_zoo.cli tune sentiment ...` for a tiny search."""
    return [
        sys.executable, "-m", "recurrent_zoo.cli", "tune", "sentiment",
        "--data", str(data), "--directory", str(directory), *TINY, *extra,
    ]  # fmt: skip


def start(command: list[str], log: Path, **env: str) -> subprocess.Popen:
    """Starts `command` in its own process group, output to `log`."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )


def kill(process: subprocess.Popen) -> None:
    """SIGKILLs the process's group (it started it) and reaps it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def trials(project: Path) -> dict[str, dict]:
    """trial id -> the `trial.json` keras-tuner wrote, for every trial."""
    found = {}
    for path in sorted(project.glob("trial_*/trial.json")):
        state = json.loads(path.read_text())
        found[state["trial_id"]] = state
    return found


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    processes: tuple[subprocess.Popen, ...] = (),
    logs: tuple[Path, ...] = (),
) -> None:
    """Polls `condition` until true; fails (with the logs) on timeout or exit."""
    deadline = time.monotonic() + timeout
    while not condition():
        exited = [p for p in processes if p.poll() is not None]
        if time.monotonic() > deadline or exited:
            reason = f"exited with {exited[0].returncode}" if exited else "timed out"
            raise AssertionError(f"{what}: {reason}\n{read_logs(logs)}")
        time.sleep(0.2)


def read_logs(logs: tuple[Path, ...]) -> str:
    return "\n".join(
        f"--- {log.name} ---\n{log.read_text(errors='replace')[-4000:]}"
        for log in logs
        if log.exists()
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
