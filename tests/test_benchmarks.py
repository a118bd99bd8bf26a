"""The layer benchmarks' measuring kit and both scripts, at tiny shapes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from cudnn_ops import cudnn_lstm

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import harness  # noqa: E402
import layer_scaling  # noqa: E402


def test_execution_path_finds_cudnn_in_a_traced_graph():
    # Tracing needs no GPU: the op only has to appear in the graph.
    cudnn = tf.function(cudnn_lstm)

    x = tf.zeros([5, 2, 3])
    ops = harness.graph_ops(cudnn, x)
    assert harness.execution_path(ops, jit_compile=False) == "cuDNN"

    model = harness.build_model(harness.find("keras.LSTM"), 4, 5, 3)
    step = harness.train_step(model, jit_compile=False)
    batch = harness.make_batch(model, 2)
    ops = harness.graph_ops(step, *batch)
    assert not any(op.startswith("CudnnRNN") for op in ops)
    assert harness.execution_path(ops, jit_compile=False) == "while_loop"
    assert harness.execution_path(ops, jit_compile=True) == "XLA"


def test_execution_path_names_a_min_rnn_training_scan_compiled_by_xla():
    paths = {}
    for label in ("recurrent_zoo.MinGRU", "recurrent_zoo.MinGRU(use_xla=False)"):
        model = harness.build_model(harness.find(label), 4, 5, 3)
        step = harness.train_step(model, jit_compile=False)
        ops = harness.graph_ops(step, *harness.make_batch(model, 2))
        paths[label] = harness.execution_path(ops, jit_compile=False)
    assert paths == {
        "recurrent_zoo.MinGRU": "graph + XLA function",
        "recurrent_zoo.MinGRU(use_xla=False)": "graph",
    }


def test_train_step_learns_and_every_candidate_builds():
    for candidate in harness.CANDIDATES:
        model = harness.build_model(candidate, 4, 5, 3)
        x, y = harness.make_batch(model, 3)
        step = harness.train_step(model, jit_compile=False)
        losses = [float(step(x, y)) for _ in range(3)]
        assert losses[-1] < losses[0], candidate.label


def test_every_cell_of_the_registry_is_benchmarked():
    # A new cell's layer must meet the built-ins in layer_speed, with and
    # without layer normalization where it has both.
    from recurrent_zoo.cells import CELLS

    benchmarked = set()
    for candidate in harness.CANDIDATES:
        layer = candidate.make(3)
        layer = getattr(layer, "forward_layer", layer)
        if candidate.attention:
            continue
        benchmarked.add((type(layer), getattr(layer.cell, "layer_norm", None)))
    for name, spec in CELLS.items():
        layer = spec.build(3)
        key = (type(layer), getattr(layer.cell, "layer_norm", None))
        if spec.builtin or name == "simple_rnn":
            # Keras's own, and SimpleRNN (benchmarked in its drop-in form).
            assert any(t is key[0] for t, _ in benchmarked), name
        else:
            assert key in benchmarked, name


@pytest.mark.slow  # traces nine training steps
def test_scan_formulations_agree_and_are_timed():
    import scan_formulations

    # `main` checks every formulation's states against Keras's sequential
    # loop before it times anything.
    rows = scan_formulations.main(["--quick"])
    names = {r["formulation"] for r in rows}
    assert names == {*scan_formulations.FORMULATIONS, scan_formulations.SEQUENTIAL,
                     scan_formulations.LSTM}  # fmt: skip
    assert all(r["train_step_ms"] > 0 for r in rows)


def test_candidates_rejects_unknown_pairs():
    with pytest.raises(ValueError, match="'GRUish'"):
        harness.candidates(["GRUish"])
    assert {c.pair for c in harness.candidates(["LSTM"])} == {"LSTM"}


def test_linear_fit_on_exact_lines():
    lengths = [50, 100, 200, 400]
    fit = layer_scaling.linear_fit(lengths, [0.002 * n for n in lengths])
    assert fit["ms_per_step"] == pytest.approx(2.0)
    assert fit["intercept_ms"] == pytest.approx(0.0, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["per_token_growth"] == pytest.approx(1.0)
    # A quadratic cost is caught: per-token cost grows with length.
    fit = layer_scaling.linear_fit(lengths, [1e-5 * n * n for n in lengths])
    assert fit["per_token_growth"] == pytest.approx(8.0)


def test_training_memory_grows_with_sequence_length():
    # A real child process; back-propagation keeps every step, so doubling
    # the length roughly doubles what a training step holds. Shapes big
    # enough (6-23 MiB) that the allocator's few hundred KiB of noise cannot
    # move the ratio: at batch 16 / 32 units (1-3 MiB) it failed 1 run in 2.
    shapes = [dict(batch=64, steps=n, features=16, units=64) for n in (50, 100, 200)]
    peaks = harness.measure_memory("keras.LSTM", shapes, jit_compile=False)
    assert all(p is not None and p > 0 for p in peaks), peaks
    slope = np.polyfit([50, 100, 200], peaks, 1)[0]
    assert peaks[2] / peaks[0] == pytest.approx(4.0, rel=0.35)
    assert slope > 0


def _script(name, tmp_path, *args):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick",
         "--results", str(tmp_path), *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# One run under a dtype policy (each run of the script, with its memory
# children, takes about a minute): the policy reaches every candidate and
# every memory child, and the files are what a float32 run writes.
@pytest.mark.slow  # runs the script, which times and measures memory
def test_layer_speed_script_writes_its_results_under_the_dtype_policy(tmp_path):
    _script(
        "layer_speed.py", tmp_path, "--pairs", "SimpleRNN",
        "--dtype-policy", "mixed_bfloat16",
    )  # fmt: skip
    payload = json.loads((tmp_path / "layer_speed.json").read_text())
    assert payload["command"].startswith("python ")
    assert payload["machine"]["tensorflow"] == tf.__version__
    assert payload["arguments"]["dtype_policy"] == "mixed_bfloat16"
    rows = {r["layer"]: r for r in payload["results"]}
    assert set(rows) == {
        "recurrent_zoo.SimpleRNN", "recurrent_zoo.SimpleRNN(use_xla=True)",
        "keras.SimpleRNN",
    }  # fmt: skip
    builtin = rows["keras.SimpleRNN"]
    assert builtin["throughput_ratio"] == 1.0
    mine = rows["recurrent_zoo.SimpleRNN"]
    assert mine["throughput_ratio"] == pytest.approx(
        mine["sequences_per_s"] / builtin["sequences_per_s"]
    )
    assert mine["path"] == "while_loop"
    # Both of its training loops compiled: no TensorFlow while loop is left.
    assert rows["recurrent_zoo.SimpleRNN(use_xla=True)"]["path"] == (
        "graph + XLA function"
    )
    assert all(row["train_peak_mib"] > 0 for row in rows.values())
    table = (tmp_path / "layer_speed.md").read_text()
    assert "| SimpleRNN | recurrent_zoo.SimpleRNN | while_loop |" in table
    assert "Dtype policy `mixed_bfloat16`" in table
    assert (tmp_path / "layer_speed.png").stat().st_size > 10_000


@pytest.mark.slow  # runs the script: three sweeps and a memory probe
def test_layer_scaling_script_writes_its_results(tmp_path):
    _script(
        "layer_scaling.py", tmp_path,
        "--layers", "recurrent_zoo.SimpleRNN", "keras.SimpleRNN",
    )  # fmt: skip
    payload = json.loads((tmp_path / "layer_scaling.json").read_text())
    points = payload["sweeps"]["steps"]
    assert [p["shape"]["steps"] for p in points] == [2, 4, 8]
    for point in points:
        assert "ratio" in point["layers"]["recurrent_zoo.SimpleRNN"]
    assert set(payload["linearity"]) == {"recurrent_zoo.SimpleRNN", "keras.SimpleRNN"}
    assert len(payload["memory"]["peak_mib"]["keras.SimpleRNN"]) == 3
    for name in ("layer_scaling.md", "layer_scaling.png", "layer_memory.png"):
        assert (tmp_path / name).stat().st_size > 500


def test_preset_storage_measures_a_finished_run(tmp_path, shared_data):
    import keras
    import preset_storage
    from tiny_models import TINY_TOPIC

    from recurrent_zoo.models import TextClassifier
    from recurrent_zoo.models.compact import grid_step
    from recurrent_zoo.training import tasks

    run = {
        "corpus": "20newsgroups",
        "max_per_class": 4,
        "seed": 3,
        "remove": ["quotes", "headers"],
        "validation_fraction": 0.25,
    }
    # The split `train` itself carves for such a run.
    full = tasks.load_split(
        "20newsgroups", shared_data, "train", 4, 3, ("quotes", "headers")
    )
    expected = full.split(0.25, 3)[1]
    got = preset_storage.validation_split(run, str(shared_data))
    assert list(got.texts) == list(expected.texts)
    np.testing.assert_array_equal(got.labels, expected.labels)

    folder = tmp_path / "runs" / "tiny"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    model = TextClassifier(full.class_names, **TINY_TOPIC)
    model.adapt(full.texts)
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:
        variable.assign(rng.normal(0, 0.2, variable.shape).astype("float32"))
    model.save(folder / "best.keras")

    preset_storage.main(
        ["--data", str(shared_data), "--only", "tiny",
         "--runs", str(tmp_path / "runs"), "--results", str(tmp_path)]
    )  # fmt: skip
    payload = json.loads((tmp_path / "preset_storage.json").read_text())
    assert payload["command"].startswith("python benchmarks/preset_storage.py")
    result = payload["results"]["tiny"]
    assert result["validation_texts"] == len(expected.labels) == 20
    assert result["rounded"] == ["embedding/embeddings", "wide_logits/kernel"]
    rows = result["rows"]
    assert [r["relative_step"] for r in rows] == list(preset_storage.STEPS)
    embeddings = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings)
    rms = np.sqrt(np.mean(embeddings.astype(np.float64) ** 2))
    for row in rows:
        assert 0 <= row["changed"] <= 20
        assert 0.0 <= row["validation_accuracy"] <= 1.0
        if row["relative_step"] is None:
            assert row["grid"] == {}
        else:
            step = row["grid"]["embedding/embeddings"]
            # The largest power of two within relative_step x rms.
            assert step <= row["relative_step"] * rms < 2 * step
            assert np.log2(step) == int(np.log2(step))
            assert step == grid_step(embeddings, row["relative_step"])
    # Coarser grids, smaller files; float32 the largest of all.
    sizes = [r["size_bytes"] for r in rows]
    assert sizes[0] > sizes[-1] and result["float32_size_bytes"] > sizes[0]
    table = (tmp_path / "preset_storage.md").read_text()
    assert table.count("| tiny |") == len(rows) + 1


def test_models_with_cudnn_layers_run_without_xla():
    # On a GPU Keras's LSTM sets supports_jit=False (cuDNN's ops have no XLA
    # kernel); simulate that here, directly and inside a Bidirectional.
    for label in ("keras.LSTM", "keras.Bidirectional(LSTM)"):
        model = harness.build_model(harness.find(label), 4, 5, 3)
        assert harness.supports_jit(model)
        layer = model.layers[-1]
        inner = getattr(layer, "forward_layer", layer)
        inner.supports_jit = False
        assert not harness.supports_jit(model), label
    model = harness.build_model(harness.find("recurrent_zoo.LayerNormLSTM"), 4, 5, 3)
    assert harness.supports_jit(model)


def _run(seed, model_accuracy, baseline_accuracy):
    return {
        "seed": seed,
        "model": {"test_accuracy": model_accuracy, "test_macro_f1": 0.5},
        "baseline": {"test_accuracy": baseline_accuracy},
    }


def test_an_accuracy_row_reports_the_spread_over_its_seeds():
    import accuracy

    runs = [_run(0, 0.90, 0.88), _run(1, 0.92, 0.88), _run(2, 0.91, 0.89)]
    row = accuracy.over_seeds(runs)
    assert row["model"] is runs[0]["model"] and row["seeds"] == runs
    model = row["spread"]["model_test_accuracy"]
    # Sample standard deviation of 0.90, 0.92, 0.91, by hand: 0.01.
    assert model["mean"] == pytest.approx(0.91) and model["std"] == pytest.approx(0.01)
    assert row["spread"]["seeds"] == [0, 1, 2]
    assert accuracy._mean_std(row, "model") == "0.9100 ± 0.0100 (3 seeds)"
    assert accuracy._mean_std(row, "baseline") == "0.8833 ± 0.0058 (3 seeds)"
    one = accuracy.over_seeds(runs[:1])
    assert one["spread"]["model_test_accuracy"]["std"] is None
    assert accuracy._mean_std(one, "model") == "0.9000"


def test_resume_keeps_the_recorded_seeds_of_the_same_recipe_only(tmp_path, monkeypatch):
    import accuracy

    monkeypatch.setattr(accuracy, "RESULTS", tmp_path)
    recipe = accuracy.recipe_record(accuracy.BENCHMARKS["imdb"])
    older = {**recipe, "overrides": []}  # another recipe's run of seed 1
    runs = [
        {**_run(0, 0.92, 0.90), "recipe": recipe},
        {**_run(1, 0.91, 0.90), "recipe": older},
    ]
    row = accuracy.over_seeds(runs)
    assert list(accuracy.recorded_runs(row, "imdb", [0, 1, 2])) == [0]
    assert accuracy.recorded_runs(row, "imdb", [1, 2]) == {}
    assert accuracy.recorded_runs(None, "imdb", [0]) == {}
    # A resumed run trains only what it does not keep, in seed order.
    trained = []

    def run_one(name, args):
        trained.append(args.seed)
        return {**_run(args.seed, 0.93, 0.90), "recipe": recipe}

    monkeypatch.setattr(accuracy, "run_one", run_one)
    monkeypatch.setattr(accuracy, "write", lambda results, quick: None)
    (tmp_path / "accuracy.json").write_text(json.dumps({"imdb": row}))
    accuracy.main(["--only", "imdb", "--seeds", "0,1", "--resume"])
    assert trained == [1]
    accuracy.main(["--only", "imdb", "--seeds", "0,1"])  # no --resume: all
    assert trained == [1, 0, 1]


@pytest.mark.slow  # two tiny pretrain-and-train runs, one repeated
def test_an_accuracy_run_repeats_exactly_for_its_seed(
    shared_data, tmp_path, monkeypatch
):
    import argparse
    import shutil

    import accuracy

    monkeypatch.setattr(accuracy, "ROOT", tmp_path)  # its runs/ go here
    options = dict(
        data=str(shared_data), quick=True, epochs=None, pretrain_epochs=None,
        save_presets=False, seeds=[0, 1],
    )  # fmt: skip
    runs = [
        accuracy.run_one("imdb", argparse.Namespace(**options, seed=seed))
        for seed in (0, 1)
    ]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "quick_imdb", "quick_imdb_seed1",
    ]  # fmt: skip
    shutil.rmtree(tmp_path / "runs")
    again = accuracy.run_one("imdb", argparse.Namespace(**options, seed=0))
    for key in ("test_accuracy", "test_macro_f1", "val_accuracy", "best_epoch"):
        assert again["model"][key] == runs[0]["model"][key]
    assert (
        again["model"]["pretraining"]["loss"] == runs[0]["model"]["pretraining"]["loss"]
    )
    assert again["baseline"]["test_accuracy"] == runs[0]["baseline"]["test_accuracy"]
    # The second seed is another run (another split, another initialization).
    assert (
        runs[1]["model"]["pretraining"]["loss"]
        != runs[0]["model"]["pretraining"]["loss"]
    )


@pytest.mark.slow  # trains a tiny forecaster, fits SARIMAX: 10 s, 35 s when loaded
def test_forecasting_script_writes_its_results(tmp_path):
    _script("forecasting.py", tmp_path, "--runs", str(tmp_path / "runs"))
    payload = json.loads((tmp_path / "forecasting_quick.json").read_text())
    assert list(payload) == ["sunspots"]
    result = payload["sunspots"]
    assert result["command"].startswith("python ")
    assert result["machine"]["tensorflow"] == tf.__version__
    # 309 years: the last tenth (31) tested, a tenth of the rest validates.
    assert result["values"] == 309
    assert result["examples"] == {"train": 250, "validation": 28, "test": 31}
    assert result["origins"] == 31 - result["horizon"] + 1
    methods = result["methods"]
    assert list(methods) == [
        "recurrent forecaster", "seasonal naive", "linear autoregression", "SARIMAX",
    ]  # fmt: skip
    for row in methods.values():
        assert row["count"] == result["origins"] * result["horizon"]
        assert row["mae"] == pytest.approx(row["mase"] * result["mase_scale"])
    assert methods["seasonal naive"]["beats_seasonal_naive"] is None
    network = methods["recurrent forecaster"]
    assert network["beats_statistical_model"] == (
        network["mase"] < methods["SARIMAX"]["mase"]
    )
    # The markdown's numbers are the JSON's.
    table = (tmp_path / "forecasting_quick.md").read_text()
    rows = [line.split(" | ") for line in table.splitlines()
            if line.startswith("| sunspots | 309 ")]  # fmt: skip
    assert [r[4] for r in rows] == list(methods)
    for cells, row in zip(rows, methods.values(), strict=True):
        assert [float(c) for c in cells[5:8]] == [
            round(row[key], 4) for key in ("mae", "rmse", "mase")
        ]
        expected = {None: "—", True: "yes", False: "**no**"}
        assert cells[8:10] == [
            expected[row["beats_seasonal_naive"]],
            expected[row["beats_statistical_model"]],
        ]
    assert (tmp_path / "forecasting_quick_sunspots.png").stat().st_size > 10_000


def test_accuracy_reports_each_part_of_a_wide_model():
    import accuracy
    from tiny_models import TEXTS, TINY

    from recurrent_zoo.data.text_data import TextClassificationData
    from recurrent_zoo.models import TextClassifier

    labels = [1, 0, 1, 0, 0]
    model = TextClassifier(("neg", "pos"), **TINY, naive_bayes_buckets=512)
    model.adapt(TEXTS, labels=labels)
    test = TextClassificationData(list(TEXTS), labels, ("neg", "pos"))
    parts = accuracy.part_accuracies(model, test)
    mixed = model.predict_proba(TEXTS).argmax(axis=1)
    assert parts["mixed"] == np.mean(mixed == labels)
    # Its own training texts: NBSVM alone fits them.
    assert parts["linear"] == 1.0
    deep, _, _ = model._parts.predict(np.asarray(TEXTS, dtype=object), verbose=0)
    assert parts["recurrent"] == np.mean((deep[:, 0] > 0.5) == labels)
    plain = TextClassifier(("neg", "pos"), **TINY)
    assert accuracy.part_accuracies(plain, test) is None
