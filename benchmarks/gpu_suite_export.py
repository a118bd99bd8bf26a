"""The export part of `gpu_suite.py`: small models trained here, run by
`predict` (where the package's layers compile their inference loops),
then exported with `model.export`, scanned for `CudnnRNN*` ops and
XLA-compiled functions, and served by a child process that sees no GPU
and can't import recurrent_zoo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from gpu_suite_parts import PartWriter, _error_line

EXPORT = dict(samples=512, batch=64, epochs=2, steps=50, features=16, units=32)
QUICK_EXPORT = dict(samples=16, batch=8, epochs=1, steps=6, features=3, units=4)
EXPORT_ATOL = 1e-4

# Run with CUDA_VISIBLE_DEVICES=-1: a CPU-only server without recurrent_zoo.
_SERVE_SCRIPT = textwrap.dedent(
    """
    import sys
    # Make `import recurrent_zoo` fail: the SavedModel must not need it.
    sys.modules["recurrent_zoo"] = None
    import json
    import numpy as np
    import tensorflow as tf

    report = {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}
    for spec in json.loads(sys.argv[1]):
        try:
            loaded = tf.saved_model.load(spec["path"])
            outputs = loaded.serve(tf.constant(np.load(spec["input"])))
            np.save(spec["output"], np.asarray(outputs))
            report[spec["name"]] = None
        except Exception as error:
            lines = str(error).strip().splitlines() or [""]
            report[spec["name"]] = f"{type(error).__name__}: {lines[0]}"[:500]
    loaded_packages = {name.split(".")[0] for name, m in sys.modules.items() if m}
    report["recurrent_zoo_imported"] = "recurrent_zoo" in loaded_packages
    print("SERVED " + json.dumps(report), flush=True)
    """
)


def graph_def_ops(graph_def: Any) -> set[str]:
    """Op types of a GraphDef, function library included (while-loop bodies,
    gradients and the SavedModel's traced functions live there)."""
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def _graph_defs(path: str | os.PathLike[str]) -> list[Any]:
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    return [meta_graph.graph_def for meta_graph in saved.meta_graphs]


def saved_model_ops(path: str | os.PathLike[str]) -> set[str]:
    """Op types of every meta graph in a SavedModel's `saved_model.pb`."""
    ops: set[str] = set()
    for graph_def in _graph_defs(path):
        ops |= graph_def_ops(graph_def)
    return ops


def xla_functions(path: str | os.PathLike[str]) -> list[str]:
    """The SavedModel's functions marked for XLA (`_XlaMustCompile`), which
    TensorFlow Serving refuses unless started with
    `--xla_cpu_compilation_enabled` (tensorflow/serving#2214)."""
    return sorted(
        function.signature.name
        for graph_def in _graph_defs(path)
        for function in graph_def.library.function
        if function.attr["_XlaMustCompile"].b
    )


def cudnn_ops(ops: Iterable[str]) -> list[str]:
    """The cuDNN RNN ops among `ops`: they have no CPU kernel."""
    return sorted(op for op in ops if op.startswith("CudnnRNN"))


def export_models(settings: dict[str, Any]) -> dict[str, Any]:
    """Ours (every recurrent_zoo recurrent layer) and Keras's LSTM, untrained."""
    import keras

    from recurrent_zoo import layers as rz

    units = settings["units"]
    shape = (settings["steps"], settings["features"])
    inputs = keras.Input(shape)
    hidden = rz.Bidirectional(rz.LayerNormLSTM(units, return_sequences=True))(inputs)
    hidden = rz.LayerNormGRU(units, return_sequences=True)(hidden)
    ours = keras.Model(inputs, keras.layers.Dense(1)(rz.SimpleRNN(units)(hidden)))
    inputs = keras.Input(shape)
    builtin = keras.Model(
        inputs, keras.layers.Dense(1)(keras.layers.LSTM(units)(inputs))
    )
    return {"recurrent_zoo": ours, "keras.LSTM": builtin}


def serve_on_cpu(specs: list[dict[str, str]], timeout: float) -> dict[str, Any]:
    """Serve each export in one child that sees no GPU and no recurrent_zoo."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SERVE_SCRIPT, json.dumps(specs)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"serving child timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("SERVED "):
            return json.loads(line[len("SERVED ") :])
    tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
    return {"error": f"serving child failed: {tail[0][:500]}"}


def _export_one(name: str, model, x: np.ndarray, path: Path) -> dict[str, Any]:
    """Predict in this process, export and scan; `_add_serving` adds the
    rest. Predict first: its step compiles our inference loops, and the
    export traced after it must still hold plain ops only."""
    np.save(f"{path}.expected.npy", model.predict(x, verbose=0))
    model.export(str(path), verbose=False)
    ops = saved_model_ops(path)
    return {
        "model": name,
        "layers": [type(layer).__name__ for layer in model.layers[1:]],
        "trained_on": model.trainable_weights[0].value.device or "?",
        "cudnn_ops": cudnn_ops(ops),
        "xla_functions": xla_functions(path),
        "op_types": len(ops),
        "path": str(path),
    }


def _add_serving(row: dict[str, Any], report: dict[str, Any]) -> None:
    if "path" not in row:  # the export itself failed
        return
    error = report.get(row["model"], report.get("error", "not served"))
    row.update(served_on_cpu=error is None, serve_error=error)
    path = row.pop("path")
    if error is None:
        got, expected = np.load(f"{path}.out.npy"), np.load(f"{path}.expected.npy")
        row["max_abs_diff"] = float(np.max(np.abs(got - expected)))
        row["matches"] = bool(np.allclose(got, expected, atol=EXPORT_ATOL))


def _export_all(fitted: dict[str, Any], x: np.ndarray, folder: Path) -> list[dict]:
    """Our model, Keras's LSTM as exported on this device, and Keras's LSTM
    with cuDNN off while exporting (recurrent_zoo/export.py's fix). Keras's
    rows are observations: their failure must not cost ours."""
    lstm = fitted["keras.LSTM"].layers[1]
    variants = [
        ("recurrent_zoo", fitted["recurrent_zoo"], None),
        ("keras.LSTM", fitted["keras.LSTM"], "auto"),
        ("keras.LSTM use_cudnn=False", fitted["keras.LSTM"], False),
    ]
    rows = []
    for index, (name, model, use_cudnn) in enumerate(variants):
        if use_cudnn is not None:
            lstm.use_cudnn = use_cudnn
        try:
            rows.append(_export_one(name, model, x, folder / f"model{index}"))
        except Exception as error:
            if name == "recurrent_zoo":
                raise
            rows.append(
                {
                    "model": name,
                    "layers": [],
                    "trained_on": "?",
                    "cudnn_ops": [],
                    "served_on_cpu": False,
                    "serve_error": f"export failed: {_error_line(error)}",
                }
            )
    lstm.use_cudnn = "auto"
    return rows


def _export_and_serve(fitted: dict[str, Any], x: np.ndarray, timeout: float):
    """Rows of every export, served in one child; and the child's report."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = _export_all(fitted, x, folder)
        np.save(folder / "input.npy", x)
        specs = [
            {
                "name": r["model"],
                "path": r["path"],
                "input": str(folder / "input.npy"),
                "output": f"{r['path']}.out.npy",
            }
            for r in rows
            if "path" in r
        ]
        report = serve_on_cpu(specs, timeout)
        for row in rows:
            _add_serving(row, report)
    return rows, report


def part_export(writer: PartWriter) -> None:
    import tensorflow as tf

    # TF32 matmuls (on by default on Ampere and later) differ from the CPU's
    # float32 by ~1e-3; off, the GPU-vs-CPU comparison can be tight.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    settings = QUICK_EXPORT if writer.spec["quick"] else EXPORT
    rng = np.random.default_rng(0)
    x = rng.normal(
        size=(settings["samples"], settings["steps"], settings["features"])
    ).astype("float32")
    y = rng.normal(size=(settings["samples"], 1)).astype("float32")
    fitted = export_models(settings)
    for model in fitted.values():
        # XLA is layer_speed's subject; here training only has to happen on
        # this device, and a compile failure must not cost the export check.
        model.compile(optimizer="adam", loss="mse", jit_compile=False)
        model.fit(
            x, y, batch_size=settings["batch"], epochs=settings["epochs"], verbose=0
        )
    # The parent's hard cap is the real limit; this one only keeps a hung
    # child from outliving a part that is otherwise done.
    rows, report = _export_and_serve(fitted, x[:8], max(writer.time_left(), 60))
    writer.set(serving_child=report)
    for row in rows:
        row["role"] = "checked" if row["model"] == "recurrent_zoo" else "observation"
        writer.add("rows", row)
    _check_ours(writer, rows[0], report)


def _check_ours(writer: PartWriter, row: dict[str, Any], report: dict) -> None:
    """Our export must hold no cuDNN op nor XLA function and serve the same
    numbers on a CPU."""
    if row["cudnn_ops"]:
        writer.add("failures", f"recurrent_zoo export holds {row['cudnn_ops']}")
    if row.get("xla_functions"):
        writer.add("failures", f"recurrent_zoo export holds XLA {row['xla_functions']}")
    if not row["served_on_cpu"]:
        writer.add("failures", f"recurrent_zoo export failed: {row['serve_error']}")
    elif not row["matches"]:
        writer.add("failures", f"served output differs by {row['max_abs_diff']:.2e}")
    if report.get("gpus") or report.get("recurrent_zoo_imported"):
        writer.add("failures", f"serving child was not isolated: {report}")
    if writer.data["failures"]:
        writer.set(status="failed")
