"""`train char_lm`, `generate` and `evaluate` of a language model, end to end."""

import json
import math

import keras
import numpy as np
import pytest
from cli_support import fails_in_one_line, run_cli

from recurrent_zoo.data import load_text_documents
from recurrent_zoo.models import TextClassifier

SENTENCES = [
    "The cat sat on the mat.",
    "A dog ran after the ball, and the ball rolled away.",
    "Rain fell on the old town; nobody minded.",
    "She wrote a letter to her friend.",
]
TINY = [
    "--epochs", "1",
    "--batch-size", "8",
    "--units", "16",
    "--embedding-dim", "8",
    "--sequence-length", "16",
    "--vocabulary-size", "40",
    "--learning-rate", "0.02",
    "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("char_lm")
    rng = np.random.default_rng(0)
    data = folder / "corpus.txt"
    data.write_text(
        "\n\n".join(" ".join(rng.choice(SENTENCES, 2)) for _ in range(30)),
        encoding="utf-8",
    )
    out = folder / "run"
    argv = ["train", "char_lm", "--data", str(data), "--out", str(out), *TINY]
    code, stdout, stderr = run_cli(argv)
    assert code == 0, stderr
    return {
        "data": data,
        "out": out,
        "model": str(out / "model.keras"),
        "stdout": stdout,
    }


def test_train_prints_the_test_bits_per_character(run):
    metrics = json.loads((run["out"] / "metrics.json").read_text())
    bits = metrics["test"]["bits_per_character"]
    assert math.isfinite(bits) and bits > 0
    assert f"test {bits:.3f} bits per character" in run["stdout"]
    assert "accuracy" not in run["stdout"]


def test_generate_continues_the_prompt_reproducibly(run):
    argv = ["generate", run["model"], "--prompt", "The ", "--length", "30"]
    code, first, _ = run_cli([*argv, "--seed", "3"])
    assert code == 0 and first.startswith("The ")
    assert run_cli([*argv, "--seed", "3"])[1] == first
    code, payload, _ = run_cli([*argv, "--temperature", "0", "--json"])
    result = json.loads(payload)
    model = keras.saving.load_model(run["model"])
    assert result["text"] == model.generate("The ", 30, temperature=0)
    assert len(result["text"]) == 30
    # A prompt of characters the model never saw still runs.
    argv = ["generate", run["model"], "--prompt", "Ωμέγα", "--length", "5"]
    assert run_cli(argv)[0] == 0


def test_generate_rejects_bad_input_in_one_line(run, tmp_path):
    model = run["model"]
    bad = [
        (["--temperature", "-1"], "temperature must be a finite number >= 0"),
        (["--temperature", "nan"], "got nan"),
        (["--length", "-3"], "length must be an integer >= 0, got -3"),
        (["--top-k", "0"], "top_k=0"),
    ]
    for options, message in bad:
        fails_in_one_line(["generate", model, *options], "generate", message)
    fails_in_one_line(["generate", str(tmp_path / "no.keras")], "generate", "no such")
    classifier = TextClassifier(
        ["a", "b"],
        vocabulary_size=20,
        embedding_dim=2,
        units=(2,),
        attention_units=2,
        sequence_length=8,
    )
    classifier.adapt(["a b c", "b c d"])
    classifier.save(tmp_path / "classifier.keras")
    fails_in_one_line(
        ["generate", str(tmp_path / "classifier.keras")], "generate", "TextClassifier"
    )


def test_evaluate_prints_the_bits_the_model_computes(run):
    argv = ["evaluate", run["model"], "--data", str(run["data"])]
    code, stdout, stderr = run_cli(argv)
    assert code == 0, stderr
    model = keras.saving.load_model(run["model"])
    test = load_text_documents(run["data"], "test")
    assert f"{model.bits_per_character(test.texts):.4f} bits per character" in stdout
    code, payload, _ = run_cli(
        [
            "evaluate",
            run["model"],
            "--data",
            str(run["data"]),
            "--split",
            "all",
            "--json",
        ]
    )
    report = json.loads(payload)
    everything = load_text_documents(run["data"], "all").texts
    # Not bit for bit: Keras traces its predict step anew for a new input
    # shape, and the kernels compile a trace of fixed length by XLA
    # (`tf_kernel_parts.inference_compiler`), so which batches run compiled
    # depends on what the process ran before; the two loops differ by
    # float32 rounding.
    assert report["bits_per_character"] == pytest.approx(
        model.bits_per_character(everything), rel=1e-6
    )
    assert report["documents"] == 30


def test_evaluate_bad_text_gives_a_number_or_one_line(run, tmp_path):
    model = run["model"]
    cases = {
        "unseen.txt": "Ωμέγα ЖЖЖ 世界 🙂".encode(),
        "bytes.txt": b"caf\xe9 \xff\xfe ol\xc3",  # not UTF-8: read as latin-1
        "long.txt": ("the cat sat on the mat " * 2_500).encode(),  # one line
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        argv = ["evaluate", model, "--data", str(tmp_path / name), "--split", "all"]
        code, stdout, stderr = run_cli([*argv, "--json"])
        assert code == 0, stderr
        assert math.isfinite(json.loads(stdout)["bits_per_character"]), name
    (tmp_path / "empty.txt").write_bytes(b"")
    argv = ["evaluate", model, "--data", str(tmp_path / "empty.txt"), "--split", "all"]
    fails_in_one_line(argv, "evaluate", "no 'all' documents")
    argv = ["evaluate", model, "--data", str(tmp_path / "long.txt")]
    fails_in_one_line(argv, "evaluate", "needs at least two")


def test_predict_refuses_a_language_model_in_one_line(run):
    code, _, stderr = run_cli(["predict", run["model"], "some text"])
    assert code == 2 and "got CharLanguageModel" in stderr, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_export_writes_the_scoring_and_generating_signatures(run, tmp_path):
    import tensorflow as tf

    code, stdout, stderr = run_cli(["export", run["model"], str(tmp_path / "lm")])
    assert code == 0, stderr
    loaded = tf.saved_model.load(stdout.strip())
    assert set(loaded.signatures) == {"serving_default", "generate"}
    model = keras.saving.load_model(run["model"])
    texts = ["The cat sat on the mat.", "Rain fell."]
    scored = loaded.signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(
        scored["bits_per_character"].numpy(),
        [model.bits_per_character([t]) for t in texts],
        atol=1e-5,
    )
