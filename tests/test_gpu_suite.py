"""benchmarks/gpu_suite.py on a CPU: the refusal without a GPU, usage errors,
the cuDNN scan of exports, budgets and caps; the whole quick run is slow."""

import importlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from cudnn_ops import cudnn_lstm

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_suite  # noqa: E402
import gpu_suite_export as suite_export  # noqa: E402
import gpu_suite_fit as suite_fit  # noqa: E402
import gpu_suite_parts as parts  # noqa: E402
import gpu_suite_speed as suite_speed  # noqa: E402
import harness  # noqa: E402

SCRIPT = BENCHMARKS / "gpu_suite.py"
HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


def _suite(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--parts", "bogus"], "invalid choice: 'bogus'"),
        (["--budget-s", "0"], "must be positive"),
        (["--budget-s", "soon"], "not a number: 'soon'"),
        (["--results", __file__], "is not a folder"),
        (["--nope"], "unrecognized arguments: --nope"),
    ],
)
def test_usage_errors_are_one_line(args, message):
    done = _suite(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("gpu_suite: error: ")
    assert message in done.stderr


def test_wrapper_passes_arguments_through():
    done = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_suite.sh"), "--parts", "fit", "bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("gpu_suite: error: argument --parts")


@pytest.mark.skipif(HAS_GPU, reason="a GPU is visible: nothing to refuse")
def test_no_gpu_is_refused_in_one_line(tmp_path):
    done = _suite("--results", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    # TensorFlow's own start-up lines may come first (they say why no GPU
    # was found); ours is the last and only one.
    ours = [line for line in done.stderr.splitlines() if "gpu_suite" in line]
    assert ours == [gpu_suite.NO_GPU]
    assert done.stderr.splitlines()[-1] == gpu_suite.NO_GPU
    assert not (tmp_path / "out").exists()


def test_budget_spent_before_any_part_still_writes_results(tmp_path):
    # TensorFlow's import alone outlasts a 1 s budget: every part is skipped.
    done = _suite(
        "--quick", "--allow-cpu", "--budget-s", "1", "--results", str(tmp_path)
    )
    assert done.returncode == 3, done.stderr[-2000:]
    suite = json.loads((tmp_path / "suite.json").read_text())
    assert suite["status"] == "partial"
    assert list(suite["parts"]) == ["export", "fit", "layer_speed"]
    assert {p["status"] for p in suite["parts"].values()} == {"skipped"}
    assert "fit: skipped, no results" in (tmp_path / "suite.md").read_text()


# The hard cap ------------------------------------------------------------------

_STUCK_PART = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from pathlib import Path
    spec = json.loads(sys.argv[1])
    folder = Path(spec["results"]) / "parts"
    sleeper = subprocess.Popen(["sleep", "60"])
    (folder / "sleeper.pid").write_text(str(sleeper.pid))
    row = {"epoch": 1}
    (folder / (spec["part"] + ".json")).write_text(
        json.dumps({"part": spec["part"], "status": "running", "rows": [row]}))
    time.sleep(60)
    """
)


def test_a_part_past_its_cap_is_killed_with_its_children(tmp_path, monkeypatch):
    script = tmp_path / "stuck.py"
    script.write_text(_STUCK_PART)
    monkeypatch.setattr(gpu_suite, "PARTS_SCRIPT", script)
    args = gpu_suite.parse_args(["--results", str(tmp_path / "out")])
    started = time.monotonic()
    result = gpu_suite.run_part("fit", args, cap_s=2.0, command="test")
    assert time.monotonic() - started < 2.0 + 2 * gpu_suite.KILL_GRACE_S + 2
    assert result["status"] == "timed out"
    assert result["rows"] == [{"epoch": 1}]  # what it wrote before the cap
    pid = int((tmp_path / "out" / "parts" / "sleeper.pid").read_text())
    for _ in range(50):  # the grandchild dies with the process group
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"grandchild {pid} survived")


def test_a_crashed_part_is_reported_with_its_error(tmp_path, monkeypatch):
    script = tmp_path / "crash.py"
    script.write_text("raise RuntimeError('boom')\n")
    monkeypatch.setattr(gpu_suite, "PARTS_SCRIPT", script)
    args = gpu_suite.parse_args(["--results", str(tmp_path / "out")])
    result = gpu_suite.run_part("export", args, cap_s=60.0, command="test")
    assert result["status"] == "crashed (exit 1)"
    assert result["log_tail"][-1] == "RuntimeError: boom"
    assert gpu_suite.exit_code({"export": result}) == 1


def test_caps_and_exit_codes():
    # A share-limited part gets its share, unless nothing follows it.
    assert gpu_suite.part_cap("fit", 450, 400, last=False) == 90
    assert gpu_suite.part_cap("fit", 450, 400, last=True) == 400 - 8
    assert gpu_suite.part_cap("layer_speed", 450, 300, last=True) == 300 - 8
    ok = {"status": "ok"}
    assert gpu_suite.exit_code({"a": ok, "b": ok}) == 0
    assert gpu_suite.exit_code({"a": ok, "b": {"status": "timed out"}}) == 3
    assert gpu_suite.exit_code({"a": {"status": "partial"}}) == 3
    assert gpu_suite.exit_code({"a": {"status": "crashed (exit 139)"}}) == 1
    assert (
        gpu_suite.exit_code({"a": {"status": "failed"}, "b": {"status": "partial"}})
        == 1
    )


def test_every_part_resolves_to_its_function():
    # child_main imports a part's module only when it runs it.
    assert set(parts.PARTS) == set(gpu_suite.ORDER)
    for module, function in parts.PARTS.values():
        assert callable(getattr(importlib.import_module(module), function))


def test_parse_nvidia_smi():
    text = "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n"
    assert gpu_suite.parse_nvidia_smi(text) == {
        "name": "NVIDIA H100 80GB HBM3",
        "driver_version": "550.54.15",
        "memory_total": "81559 MiB",
        "gpu_count": "1",
    }
    assert gpu_suite.parse_nvidia_smi("") is None
    assert gpu_suite.parse_nvidia_smi("No devices were found") is None


# The export check ----------------------------------------------------------------


class _CudnnModule(tf.Module):
    """A SavedModel holding Keras's failure: a CudnnRNNV3 op. Tracing and
    saving need no GPU; running it does."""

    @tf.function(input_signature=[tf.TensorSpec([5, 2, 3])])
    def serve(self, x):
        return cudnn_lstm(x)


def test_export_check_finds_cudnn_ops_and_none_in_ours(tmp_path):
    module = _CudnnModule()
    graph = module.serve.get_concrete_function().graph.as_graph_def()
    assert suite_export.cudnn_ops(suite_export.graph_def_ops(graph)) == ["CudnnRNNV3"]
    tf.saved_model.save(module, str(tmp_path / "cudnn"))
    assert suite_export.cudnn_ops(suite_export.saved_model_ops(tmp_path / "cudnn")) == [
        "CudnnRNNV3"
    ]

    ours = suite_export.export_models(suite_export.QUICK_EXPORT)["recurrent_zoo"]
    x = np.random.default_rng(0).normal(size=(5, 6, 3)).astype("float32")
    row = suite_export._export_one("recurrent_zoo", ours, x, tmp_path / "ours")
    assert row["cudnn_ops"] == [] and row["xla_functions"] == []
    # Not vacuous: the predict before the export ran compiled loops.
    predict = ours.predict_function.get_concrete_function([(tf.constant(x),)])
    library = predict.graph.as_graph_def().library.function
    assert any(f.attr["_XlaMustCompile"].b for f in library)
    assert row["layers"] == ["Bidirectional", "LayerNormGRU", "SimpleRNN", "Dense"]
    # The scan reads function bodies: the recurrent loop lives in one.
    ops = suite_export.saved_model_ops(tmp_path / "ours")
    assert {"While", "StatelessWhile"} & ops and "MatMul" in ops

    # One serving child for both: ours serves and matches, cuDNN can't.
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "x5.npy", np.zeros([5, 2, 3], "float32"))
    specs = [
        {
            "name": "recurrent_zoo",
            "path": str(tmp_path / "ours"),
            "input": str(tmp_path / "x.npy"),
            "output": f"{tmp_path / 'ours'}.out.npy",
        },
        {
            "name": "cudnn",
            "path": str(tmp_path / "cudnn"),
            "input": str(tmp_path / "x5.npy"),
            "output": str(tmp_path / "c.npy"),
        },
    ]
    report = suite_export.serve_on_cpu(specs, timeout=300)
    assert report["gpus"] == [] and report["recurrent_zoo_imported"] is False
    assert report["recurrent_zoo"] is None
    assert "CudnnRNNV3" in report["cudnn"]
    suite_export._add_serving(row, report)
    assert row["served_on_cpu"] and row["matches"], row

    writer = parts.PartWriter(_spec(tmp_path, "export"))
    suite_export._check_ours(writer, row, report)
    assert writer.data["failures"] == []
    cudnn_row = {**row, "cudnn_ops": ["CudnnRNNV3"]}
    suite_export._check_ours(writer, cudnn_row, report)
    assert writer.data["status"] == "failed"
    assert "CudnnRNNV3" in writer.data["failures"][0]
    suite_export._check_ours(writer, {**row, "xla_functions": ["f"]}, report)
    assert "XLA ['f']" in writer.data["failures"][-1]
    saved = json.loads((tmp_path / "parts" / "export.json").read_text())
    assert saved["status"] == "failed"


def _spec(tmp_path: Path, part: str, deadline_s: float = 60) -> dict:
    return {
        "part": part,
        "results": str(tmp_path),
        "quick": True,
        "data": [],
        "command": "test",
        "deadline": time.time() + deadline_s,
    }


# layer_speed and fit pieces ------------------------------------------------------


def test_cudnn_builtins_run_without_xla_beside_ours():
    # On a GPU with XLA on, Keras's LSTM would fail to compile (CudnnRNNV3
    # has no XLA kernel); `gpu=True` takes that path on this CPU.
    members = [
        harness.find("recurrent_zoo.LayerNormLSTM(layer_norm=False)"),
        harness.find("keras.LSTM"),
    ]
    assert [suite_speed.uses_cudnn(c) for c in members] == [False, True]
    assert suite_speed.uses_cudnn(harness.find("keras.GRU"))
    assert not suite_speed.uses_cudnn(harness.find("keras.SimpleRNN"))
    assert not suite_speed.uses_cudnn(harness.find("recurrent_zoo.SimpleRNN"))
    assert suite_speed.uses_cudnn(harness.find("keras.Bidirectional(LSTM)"))
    config = suite_speed.layer_speed_configs(quick=True)[1]
    assert config["tag"] == "base_jit-on"
    rows, errors = suite_speed.measure_unit(
        members, suite_speed._layer_speed_args(config, quick=True), gpu=True
    )
    assert errors == []
    assert [r["layer"] for r in rows] == [c.label for c in members]
    assert [r["jit_compile"] for r in rows] == [True, False]
    assert [r["path"] for r in rows] == ["XLA", "while_loop"]
    assert "note" in rows[1] and "note" not in rows[0]


def test_configs_take_both_shapes_on_a_gpu_and_every_kind_in_a_quick_run():
    full = [c["tag"] for c in suite_speed.layer_speed_configs(quick=False)]
    assert full == [
        "base_jit-off", "base_jit-on", "long_jit-off", "long_jit-on",
        "base_mixed-float16",
    ]  # fmt: skip
    quick = suite_speed.layer_speed_configs(quick=True)
    assert [c["tag"] for c in quick] == [
        "base_jit-off", "base_jit-on", "base_mixed-float16",
    ]  # fmt: skip
    assert max(c["batch"] * c["steps"] * c["units"] for c in quick) < 1000


def test_a_quick_run_leaves_out_the_variants_a_gpu_run_measures():
    full = [c.label for c in suite_speed.pair_members("LSTM", quick=False)]
    assert full == [
        "recurrent_zoo.LayerNormLSTM", "recurrent_zoo.LayerNormLSTM(layer_norm=False)",
        "recurrent_zoo.LayerNormLSTM(use_xla=False)", "keras.LSTM",
    ]  # fmt: skip
    quick = [c.label for c in suite_speed.pair_members("Bidirectional", quick=True)]
    assert quick == [
        "recurrent_zoo.Bidirectional(LayerNormLSTM)",
        "keras.Bidirectional(LSTM)",
    ]


def test_layer_speed_part_in_process_writes_each_config(tmp_path, monkeypatch):
    # The part as its child runs it, one cheap pair: the quick whole run is
    # slow, and this is where layer_speed's report meets the suite's arguments.
    monkeypatch.setattr(suite_speed, "LAYER_PAIRS", ("SimpleRNN",))
    spec = {
        "part": "layer_speed",
        "results": str(tmp_path),
        "deadline": time.time() + 300,
        "quick": True,
        "command": "test",
    }
    suite_speed.part_layer_speed(parts.PartWriter(spec))
    written = json.loads((tmp_path / "parts" / "layer_speed.json").read_text())
    assert written["errors"] == [] and written["skipped"] == []
    for config in suite_speed.layer_speed_configs(quick=True):
        tag = config["tag"]
        result = json.loads((tmp_path / f"layer_speed_{tag}.json").read_text())
        assert result["arguments"]["dtype_policy"] == config["dtype_policy"]
        assert {r["config"] for r in result["results"]} == {tag}
        assert {r["layer"] for r in result["results"]} == {
            "recurrent_zoo.SimpleRNN",
            "keras.SimpleRNN",
        }
    assert keras.mixed_precision.dtype_policy().name == "float32"


def test_synthetic_corpus_is_learnable_and_repeatable():
    texts, labels = suite_fit.synthetic_corpus(200, seed=3, words=(10, 40))
    again, _ = suite_fit.synthetic_corpus(200, seed=3, words=(10, 40))
    assert texts == again and set(labels) == {0, 1}
    positive = [sum(w in suite_fit._POSITIVE for w in t.split()) for t in texts]
    negative = [sum(w in suite_fit._NEGATIVE for w in t.split()) for t in texts]
    guess = (np.array(positive) > np.array(negative)).astype(int)
    assert (guess == labels).all()


def test_find_imdb(tmp_path):
    assert suite_fit.find_imdb([str(tmp_path / "none"), ""]) is None
    (tmp_path / "aclImdb.tar.gz").write_bytes(b"")
    assert suite_fit.find_imdb(["", str(tmp_path)]) == tmp_path


# The whole quick run -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.alone
def test_quick_run_writes_every_part(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "gpu"
    started = time.monotonic()
    done = _suite("--quick", "--allow-cpu", "--results", str(out), "--data", str(empty))
    report = out / "suite.md"
    assert done.returncode == 0, report.read_text() if report.exists() else done.stderr
    assert time.monotonic() - started < 300

    suite = json.loads((out / "suite.json").read_text())
    assert suite["status"] == "complete"
    assert {"device", "versions", "parts", "command", "date", "machine"} <= set(suite)
    assert suite["device"]["gpu_visible"] is HAS_GPU
    assert suite["versions"]["tensorflow"] == tf.__version__
    assert "cuda_build" in suite["versions"]
    assert list(suite["parts"]) == ["export", "fit", "layer_speed"]
    for part in suite["parts"].values():
        assert part["status"] == "ok" and part["rows"]

    export = {r["model"]: r for r in suite["parts"]["export"]["rows"]}
    assert export["recurrent_zoo"]["cudnn_ops"] == []
    assert export["recurrent_zoo"]["matches"]
    assert {"keras.LSTM", "keras.LSTM use_cudnn=False"} <= set(export)

    fit = suite["parts"]["fit"]
    assert fit["data"]["source"] == "synthetic"
    assert [r["epoch"] for r in fit["rows"]] == [1, 2]
    assert all(r["steps_per_s"] > 0 for r in fit["rows"])

    rows = suite["parts"]["layer_speed"]["rows"]
    tags = [c["tag"] for c in suite_speed.layer_speed_configs(quick=True)]
    assert {(r["config"], r["pair"]) for r in rows} == {
        (tag, pair) for tag in tags for pair in suite_speed.LAYER_PAIRS
    }
    for tag in tags:
        for ext in ("json", "md", "png"):
            assert (out / f"layer_speed_{tag}.{ext}").stat().st_size > 0
    policies = {
        tag: json.loads((out / f"layer_speed_{tag}.json").read_text())["arguments"][
            "dtype_policy"
        ]
        for tag in tags
    }
    assert policies.pop("base_mixed-float16") == "mixed_float16"
    assert set(policies.values()) == {"float32"}
    assert "`mixed_float16`" in (out / "layer_speed_base_mixed-float16.md").read_text()
    for name in ("export", "fit", "layer_speed"):
        assert (out / "parts" / f"{name}.log").exists()
    markdown = (out / "suite.md").read_text()
    assert "## Export" in markdown and "## Fit" in markdown
    assert "## Layer speed" in markdown and "synthetic" in markdown
