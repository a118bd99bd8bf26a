"""One prepared run of the package on a GPU, within a fixed time budget.

    python benchmarks/gpu_suite.py                       # all parts, ~7.5 min
    benchmarks/gpu_suite.sh --parts export fit           # the same, some parts
    python benchmarks/gpu_suite.py --quick --allow-cpu   # tiny shapes, CPU

Parts, run in this order whatever the order of `--parts` (the cheap checks
first, so that the elastic benchmark can't starve them):

- `export`: small models trained on the GPU (one with recurrent_zoo's
  LayerNormLSTM, LayerNormGRU, SimpleRNN and Bidirectional; one with
  `keras.layers.LSTM` for contrast) are exported with `model.export`; each
  SavedModel's graph is scanned for `CudnnRNN*` ops (no CPU kernel) and
  served by a child process that sees no GPU and can't import recurrent_zoo,
  against the in-process prediction. Ours must pass; Keras's LSTM is an
  observation (keras-team/keras#18504).
- `fit`: a short `fit` of the prebuilt sentiment model (`models.get
  ("sentiment")`) on 2,000 IMDB reviews, or on a synthetic corpus when
  `aclImdb.tar.gz` is not found: seconds per epoch, steps per second.
- `layer_speed`: `layer_speed.measure_pair` for the LSTM and GRU (against
  cuDNN's keras.LSTM / keras.GRU), SimpleRNN and Bidirectional pairs at batch 64 /
  200 steps / 128 units and batch 128 / 500 steps / 256 units (64 features),
  each with XLA off and on, in float32; then the base shape under
  `mixed_float16` without XLA (cuDNN's built-ins in float16 too); one build,
  5 repetitions, no memory children.

Budget (`--budget-s`, default 450 s, counted from the start): each part runs
in a child process with a cap (export and fit 20% of the budget each when a
part follows them, layer_speed what is left) and is killed when it passes
it; parts write their results as they go, so a stopped part keeps what it
measured and the suite still writes its files. Results: `suite.json`,
`suite.md`, `layer_speed_<config>.{json,md,png}` and `parts/<part>.{json,log}`
under `--results` (default `benchmarks/results/gpu`).

Exit status: 0 everything ran and passed; 1 a check failed or a part
crashed; 2 usage error, or no GPU without `--allow-cpu`; 3 the budget ran
out or the run was interrupted (partial results written).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_RESULTS = HERE / "results" / "gpu"
PARTS_SCRIPT = HERE / "gpu_suite_parts.py"

ORDER = ("export", "fit", "layer_speed")
# Share of the budget a part may use when another part follows it;
# layer_speed, the elastic one, takes whatever is left.
SHARES = {"export": 0.2, "fit": 0.2}
FINISH_RESERVE_S = 8.0  # stopping a child and writing the results
MIN_PART_S = 15.0  # less cannot even start TensorFlow in a child
KILL_GRACE_S = 3.0

NO_GPU = (
    "gpu_suite: no GPU visible (tf.config.list_physical_devices('GPU') is "
    "empty); pass --allow-cpu to run it on the CPU anyway"
)


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, not argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gpu_suite: error: {message}\n")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The suite's arguments; any error exits 2 with one line on stderr."""
    parser = _OneLineParser(prog="gpu_suite", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="folder to write (default benchmarks/results/gpu)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="run even when no GPU is visible"
    )
    parser.add_argument(
        "--budget-s",
        type=_positive_seconds,
        default=450.0,
        help="seconds for the whole run (default 450)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=ORDER,
        default=list(ORDER),
        help="parts to run (default all)",
    )
    parser.add_argument(
        "--data",
        help="folder with aclImdb.tar.gz (default: $RECURRENT_ZOO_DATA, then "
        "../shared/data beside the repository, then shared/data inside it)",
    )
    args = parser.parse_args(argv)
    if args.results.exists() and not args.results.is_dir():
        parser.error(f"--results {args.results} exists and is not a folder")
    args.parts = [part for part in ORDER if part in args.parts]
    if args.data is not None:
        args.data_candidates = [args.data]
    else:
        env = os.environ.get("RECURRENT_ZOO_DATA")
        args.data_candidates = [
            *([env] if env else []),
            str(REPO.parent / "shared" / "data"),
            str(REPO / "shared" / "data"),
        ]
    return args


# Device and versions ---------------------------------------------------------


def nvidia_smi() -> dict[str, str] | None:
    """Name, driver and memory of the first GPU, or None without nvidia-smi."""
    query = [
        "nvidia-smi",
        "--query-gpu=name,driver_version,memory.total",
        "--format=csv,noheader",
    ]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else None


def parse_nvidia_smi(text: str) -> dict[str, str] | None:
    """`NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB` -> its three fields."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    fields = [field.strip() for field in lines[0].split(",")]
    if len(fields) != 3:
        return None
    return {
        "name": fields[0],
        "driver_version": fields[1],
        "memory_total": fields[2],
        "gpu_count": str(len(lines)),
    }


def device_info(gpus: list, allow_cpu: bool) -> dict[str, Any]:
    """The GPU TensorFlow sees, described by nvidia-smi where it runs."""
    import tensorflow as tf

    # nvidia-smi even without a TF-visible GPU: it tells a driver problem
    # from a TensorFlow one.
    smi = nvidia_smi()
    # get_device_details reads the driver's description; no GPU context.
    details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
    name = ((smi or {}).get("name") or details.get("device_name")) if gpus else None
    return {
        "gpu_visible": bool(gpus),
        "name": name or "CPU only (--allow-cpu)",
        "tf_gpus": [g.name for g in gpus],
        "compute_capability": details.get("compute_capability"),
        "driver_version": (smi or {}).get("driver_version"),
        "memory_total": (smi or {}).get("memory_total"),
        "nvidia_smi": smi,
        "allow_cpu": allow_cpu,
    }


def versions() -> dict[str, Any]:
    """Library versions, and the CUDA/cuDNN TensorFlow was built against."""
    import platform
    from importlib import metadata

    import keras
    import numpy
    import tensorflow as tf

    build = dict(tf.sysconfig.get_build_info())
    try:
        ours = metadata.version("recurrent_zoo")
    except metadata.PackageNotFoundError:
        ours = None
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "recurrent_zoo": ours,
        "cuda_build": build.get("cuda_version"),
        "cudnn_build": build.get("cudnn_version"),
        "is_cuda_build": build.get("is_cuda_build"),
        "cuda_compute_capabilities": build.get("cuda_compute_capabilities"),
    }


# Running the parts -----------------------------------------------------------


def part_cap(part: str, budget_s: float, left_s: float, last: bool) -> float:
    """Seconds a part may take: what is left (minus writing the results),
    and no more than its share when another part still has to run."""
    cap = left_s - FINISH_RESERVE_S
    if part in SHARES and not last:
        cap = min(cap, SHARES[part] * budget_s)
    return cap


def _stop(child: subprocess.Popen) -> None:
    """Stop the child and what it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def run_part(part: str, args: argparse.Namespace, cap_s: float, command: str) -> dict:
    """Run one part in a child; its results, whatever became of it."""
    results: Path = args.results
    spec = {
        "part": part,
        "results": str(results),
        "quick": args.quick,
        "data": args.data_candidates,
        "command": command,
        # The soft deadline leaves the child time to wrap up by itself.
        "deadline": time.time() + cap_s - min(15.0, 0.15 * cap_s),
    }
    (results / "parts").mkdir(parents=True, exist_ok=True)
    (results / "parts" / f"{part}.json").unlink(missing_ok=True)
    log = results / "parts" / f"{part}.log"
    started = time.monotonic()
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, str(PARTS_SCRIPT), json.dumps(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        try:
            code: int | None = child.wait(timeout=cap_s)
        except subprocess.TimeoutExpired:
            _stop(child)
            code = None
        except BaseException:
            _stop(child)
            raise
    return collect_part(part, results, code, time.monotonic() - started, cap_s)


def collect_part(
    part: str, results: Path, code: int | None, seconds: float, cap_s: float
) -> dict[str, Any]:
    """The child's JSON with the parent's verdict: exit code or timeout."""
    path = results / "parts" / f"{part}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {"part": part, "rows": [], "status": "running"}
    data.update(seconds=round(seconds, 1), cap_s=round(cap_s, 1))
    if code is None:
        data["status"] = "timed out"
    elif code != 0:
        data["status"] = f"crashed (exit {code})"
        data["log_tail"] = _log_tail(results / "parts" / f"{part}.log")
    return data


def _log_tail(log: Path, lines: int = 15) -> list[str]:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    # TensorFlow's start-up chatter says nothing about why a part failed.
    return [line for line in text if not line.startswith(("I0000", "W0000"))][-lines:]


def clear_previous(results: Path) -> None:
    """Remove the files an earlier run left in `results`, by their names
    only, so that no stale part or config passes for this run's."""
    from gpu_suite_speed import layer_speed_configs

    names = [f"parts/{part}.{ext}" for part in ORDER for ext in ("json", "log")]
    names += [f"suite.{ext}" for ext in ("json", "md")]
    for config in layer_speed_configs(quick=False):
        names += [f"layer_speed_{config['tag']}.{ext}" for ext in ("json", "md", "png")]
    for name in names:
        (results / name).unlink(missing_ok=True)


def exit_code(parts: dict[str, dict]) -> int:
    statuses = [p["status"] for p in parts.values()]
    if any(s == "failed" or s.startswith("crashed") for s in statuses):
        return 1
    return 0 if all(s == "ok" for s in statuses) else 3


class _Terminated(Exception):
    """SIGTERM, turned into an exception so the results still get written."""


def _on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise _Terminated


def detect_gpus() -> list:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    gpus = detect_gpus()
    if not gpus and not args.allow_cpu:
        print(NO_GPU, file=sys.stderr)
        return 2
    import harness  # imports TensorFlow and Keras: after the cheap checks

    record = harness.RunRecord()
    payload: dict[str, Any] = {
        "suite": "gpu_suite",
        "device": device_info(gpus, args.allow_cpu),
        "versions": versions(),
        "budget_s": args.budget_s,
        "arguments": {
            "quick": args.quick,
            "parts": args.parts,
            "data": args.data_candidates,
        },
        "parts": {},
    }
    clear_previous(args.results)
    signal.signal(signal.SIGTERM, _on_sigterm)
    current = None
    try:
        for index, part in enumerate(args.parts):
            left = args.budget_s - (time.monotonic() - started)
            last = index == len(args.parts) - 1
            cap = part_cap(part, args.budget_s, left, last)
            if cap < MIN_PART_S:
                reason = f"budget: {max(left, 0):.0f} s left"
                payload["parts"][part] = {
                    "status": "skipped",
                    "rows": [],
                    "reason": reason,
                }
                print(f"gpu_suite: {part} skipped ({reason})", flush=True)
                continue
            print(f"gpu_suite: {part} (cap {cap:.0f} s) ...", flush=True)
            current = (part, time.monotonic(), cap)
            payload["parts"][part] = result = run_part(part, args, cap, record.command)
            print(
                f"gpu_suite: {part} {result['status']} in {result['seconds']:.0f} s",
                flush=True,
            )
            write_suite(args.results, payload, record)
    except (KeyboardInterrupt, _Terminated):
        if current and current[0] not in payload["parts"]:
            part, since, cap = current
            seconds = time.monotonic() - since
            kept = collect_part(part, args.results, None, seconds, cap)
            payload["parts"][part] = {**kept, "status": "interrupted"}
        for part in args.parts:
            payload["parts"].setdefault(part, {"status": "interrupted", "rows": []})
    code = exit_code(payload["parts"])
    payload["status"] = {0: "complete", 1: "failed"}.get(code, "partial")
    write_suite(args.results, payload, record)
    print(f"gpu_suite: {payload['status']}; results in {args.results}", flush=True)
    return code


# Results ---------------------------------------------------------------------


def write_suite(results: Path, payload: dict[str, Any], record: Any) -> None:
    """suite.json and suite.md; rewritten after every part."""
    import harness

    payload.update(record.finish())
    payload["elapsed_s"] = round(60 * payload["minutes"], 1)
    harness.write_results("suite", payload, suite_markdown(payload), results)


def suite_markdown(payload: dict[str, Any]) -> list[str]:
    import harness

    device, versions_ = payload["device"], payload["versions"]
    notes = [
        f"Device: {device['name']}; driver {device['driver_version'] or '–'}; "
        f"memory {device['memory_total'] or '–'}; compute capability "
        f"{device['compute_capability'] or '–'}  ",
        f"Built against CUDA {versions_['cuda_build'] or '–'}, cuDNN "
        f"{versions_['cudnn_build'] or '–'}; NumPy {versions_['numpy']}, "
        f"recurrent_zoo {versions_['recurrent_zoo']}  ",
        f"Status: **{payload.get('status', 'running')}**; budget "
        f"{payload['budget_s']:.0f} s, used {payload.get('elapsed_s', 0):.0f} s"
        + (" (quick: tiny shapes)" if payload["arguments"]["quick"] else ""),
        "",
        "| part | status | seconds | cap s |",
        "|---|---|---:|---:|",
    ]
    for name, part in payload["parts"].items():
        notes.append(
            f"| {name} | {part['status']} | {part.get('seconds', '–')} "
            f"| {part.get('cap_s', '–')} |"
        )
    sections = {
        "export": export_lines,
        "fit": fit_lines,
        "layer_speed": layer_speed_lines,
    }
    for name, part in payload["parts"].items():
        if part.get("rows"):
            notes += ["", *sections[name](part)]
        else:
            notes += ["", f"## {name}: {part['status']}, no results"]
        for key in ("skipped", "errors", "failures", "log_tail"):
            notes += [f"- {key}: {json.dumps(entry)}" for entry in part.get(key, [])]
        if part.get("reason"):
            notes.append(f"- {part['reason']}")
        if part.get("errors") or part.get("log_tail"):
            notes.append(f"- tracebacks: `parts/{name}.log`")
    title = "GPU suite: layer speed, a sentiment fit, export to a CPU server"
    return harness.header_lines(title, payload, notes)


def export_lines(part: dict[str, Any]) -> list[str]:
    lines = [
        "## Export (`model.export`, served with no GPU and no recurrent_zoo)",
        "",
        "recurrent_zoo's row is checked (no `CudnnRNN*` op, serves on the CPU, "
        "same output); Keras's rows are observations (keras-team/keras#18504).",
        "",
        "| model | role | trained on | CudnnRNN ops | serves on CPU | max abs diff |",
        "|---|---|---|---|---|---:|",
    ]
    for r in part["rows"]:
        served = "yes" if r["served_on_cpu"] else f"no: {r['serve_error']}"
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "–"
        device = r["trained_on"].rsplit("device:", 1)[-1]
        lines.append(
            f"| {r['model']} | {r['role']} | {device} | "
            f"{', '.join(r['cudnn_ops']) or 'none'} | {served} | {diff} |"
        )
    return lines


def fit_lines(part: dict[str, Any]) -> list[str]:
    data = part.get("data", {})
    where = data.get("path") or data.get("reason", "")
    lines = [
        "## Fit of the sentiment model",
        "",
        f"Data: {data.get('source', '?')} ({where}); {data.get('train_texts', '?')} "
        f"texts, {data.get('mean_words', 0):.0f} words on average; batch "
        f"{part.get('batch', '?')}; jit_compile={part.get('jit_compile', '?')}. "
        "Epoch 1 includes tracing.",
        "",
        "| epoch | seconds | steps | steps/s | sequences/s | loss | accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in part["rows"]:
        cut = "" if r["complete"] else " (cut)"
        lines.append(
            f"| {r['epoch']}{cut} | {r['seconds']:.1f} | {r['steps']} | "
            f"{r['steps_per_s']:.2f} | {r['sequences_per_s']:.1f} | "
            f"{r.get('loss', float('nan')):.3f} | "
            f"{r.get('accuracy', float('nan')):.3f} |"
        )
    if "evaluation" in part:
        e = part["evaluation"]
        lines += [
            "",
            f"Held-out accuracy {e['accuracy']:.3f} on "
            f"{data.get('eval_texts')} texts, "
            f"{e['sequences_per_s']:.0f} sequences/s.",
        ]
    return lines


def layer_speed_lines(part: dict[str, Any]) -> list[str]:
    lines = [
        "## Layer speed (per config: `layer_speed_<config>.md`)",
        "",
        "Ratios against the pair's first Keras built-in in the same config "
        "(LSTM pair: keras.LSTM, cuDNN on a GPU); above 1 is faster. XLA can't "
        "compile cuDNN's ops, so in `jit-on` configs on a GPU Keras's LSTM/GRU "
        "run without XLA (XLA column), as Keras's `jit_compile='auto'` runs "
        "them. Peak memory is not measured here (a child process per "
        "candidate costs more than the budget allows).",
        "",
        "| config | pair | layer | path | XLA | train seq/s | vs built-in "
        "| b1 ms | b256 ms | compile s |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in part["rows"]:
        lines.append(
            f"| {r['config']} | {r['pair']} | {r['layer']} | {r['path']} | "
            f"{'on' if r['jit_compile'] else 'off'} | {r['sequences_per_s']:.1f} | "
            f"{r['throughput_ratio']:.2f}x | {r['latency_batch1_ms']:.2f} | "
            f"{r['latency_batch256_ms']:.1f} | {r['compile_s']:.1f} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
