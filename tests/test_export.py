"""SavedModel export: signature, layout, atomicity, portability, bad inputs."""

import errno
import importlib
import json
import os
import re
import shutil
import subprocess
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from clean_process import run_clean
from tensorflow.core.protobuf import saved_model_pb2

from recurrent_zoo.data import load_corpus, load_imdb
from recurrent_zoo.export import (
    export_saved_model,
    find_saved_model,
    load_predictor,
    serving_function,
)
from recurrent_zoo.export import saved_model as rz_export
from recurrent_zoo.models import get

TINY = dict(
    units=(4,),
    embedding_dim=8,
    vocabulary_size=500,
    sequence_length=50,
    attention_units=4,
)
BINARY_OUTPUTS = {"probabilities", "label_id", "label", "probability"}
TOP_K_OUTPUTS = {"top_k_ids", "top_k_labels", "top_k_probabilities"}


def _tiny(name="sentiment", texts=(), labels=None, **kwargs):
    """A tiny model adapted on `texts`, and trained on them if `labels`."""
    model = get(name, **{**TINY, **kwargs})
    model.adapt(list(texts))
    if labels is not None:
        model.compile(learning_rate=1e-2)
        x = np.asarray(texts, dtype=object)
        model.fit(x, np.asarray(labels), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def model(shared_data):
    train = load_imdb(shared_data, "train", max_per_class=100)
    return _tiny(texts=train.texts, labels=train.labels)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The model's base path, holding version 1."""
    base = tmp_path_factory.mktemp("export") / "imdb"
    assert export_saved_model(model, base) == base / "1"
    return base


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported / "1"))


@pytest.fixture(scope="module")
def signature(loaded):
    # What TF Serving runs. `loaded` stays alive with the module's fixtures:
    # the signature alone does not own the variables.
    return loaded.signatures["serving_default"]


@pytest.fixture(scope="module")
def test_reviews(shared_data):
    return load_imdb(shared_data, "test", max_per_class=500)


def _serve(signature, texts):
    out = signature(text=tf.constant(texts, dtype=tf.string))
    return {key: value.numpy() for key, value in out.items()}


def _graph_ops(version_dir):
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return _ops(saved.meta_graphs[0].graph_def)


def _ops(graph_def):
    ops = {node.op for node in graph_def.node}
    return ops | {n.op for f in graph_def.library.function for n in f.node_def}


def _check_valid(out, n):
    p = out["probabilities"]
    assert p.shape == (n, 2) and p.dtype == np.float32
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out["label_id"], p.argmax(axis=1))
    assert [s.decode() for s in out["label"]] == [
        ("neg", "pos")[i] for i in out["label_id"]
    ]
    np.testing.assert_array_equal(out["probability"], p.max(axis=1))


# --- The signature and the layout -------------------------------------------


def test_saved_model_cli_lists_the_signature(exported):
    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli is not on PATH")
    result = subprocess.run(
        [cli, "show", "--all", "--dir", str(exported / "1")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    shown = result.stdout.split("signature_def['serving_default']:")[1]
    assert re.search(
        r"inputs\['text'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)", shown
    )
    outputs = dict(re.findall(r"outputs\['(\w+)'\] tensor_info:\s+dtype: (\w+)", shown))
    assert outputs == {
        "label": "DT_STRING",
        "label_id": "DT_INT64",
        "probabilities": "DT_FLOAT",
        "probability": "DT_FLOAT",
    }
    assert "tensorflow/serving/predict" in shown


def test_versions_count_up_and_carry_labels(model, exported, tmp_path):
    base = tmp_path / "models"
    assert export_saved_model(model, base) == base / "1"
    shutil.copytree(base / "1", base / "9")
    shutil.copytree(base / "1", base / "10")
    # Numeric order: by name, "9" would be the highest and 10 would clash.
    assert export_saved_model(model, base) == base / "11"
    assert sorted(os.listdir(base), key=int) == ["1", "9", "10", "11"]
    assert find_saved_model(base) == base / "11"
    assert (base / "1/assets.extra/labels.txt").read_text() == "neg\npos\n"
    meta = json.loads((base / "1/assets.extra/recurrent_zoo.json").read_text())
    assert meta["class_names"] == ["neg", "pos"]
    assert set(meta["outputs"]) == BINARY_OUTPUTS
    assert meta["model_config"]["sequence_length"] == 50


def test_refuses_to_overwrite_an_existing_version(model, exported):
    before = sorted(p.name for p in (exported / "1").iterdir())
    with pytest.raises(FileExistsError, match="overwrite"):
        export_saved_model(model, exported, version=1)
    with pytest.raises(FileExistsError, match="parent"):
        export_saved_model(model, exported / "1")
    assert sorted(p.name for p in (exported / "1").iterdir()) == before
    assert os.listdir(exported) == ["1"]


def test_overwrite_replaces_the_version(model, exported, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exported / "1", base / "3")
    (base / "3" / "stale.txt").write_text("from the old export")
    assert export_saved_model(model, base, version=3, overwrite=True) == base / "3"
    assert sorted(os.listdir(base)) == ["3"]  # the old copy is gone too
    assert not (base / "3" / "stale.txt").exists()
    assert (base / "3" / "saved_model.pb").is_file()


def test_failed_export_leaves_no_version(model, exported, tmp_path, monkeypatch):
    # Fails after the SavedModel and labels.txt are written, before the end.
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rz_export, "_metadata", fail)
    base = tmp_path / "models"
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, base)
    assert os.listdir(base) == []

    # A failed overwrite keeps the old version, byte for byte.
    shutil.copytree(exported / "1", base / "1")
    old = (base / "1" / "saved_model.pb").read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, base, version=1, overwrite=True)
    assert os.listdir(base) == ["1"]
    assert (base / "1" / "saved_model.pb").read_bytes() == old


def test_failed_final_move_restores_the_old_version(
    model, exported, tmp_path, monkeypatch
):
    # The riskiest moment of an overwrite: the old version is already aside.
    base = tmp_path / "models"
    shutil.copytree(exported / "1", base / "1")
    old = (base / "1" / "saved_model.pb").read_bytes()
    rename = os.rename

    def failing_rename(src, dst):
        if os.path.basename(src).startswith(".tmp-"):
            raise OSError(errno.EIO, "I/O error")
        return rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="I/O error"):
        export_saved_model(model, base, version=1, overwrite=True)
    assert os.listdir(base) == ["1"]
    assert (base / "1" / "saved_model.pb").read_bytes() == old


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"version": -1}, "version"),
        ({"version": "2"}, "version"),
        ({"top_k": -1}, "top_k"),
    ],
)
def test_rejects_bad_arguments(model, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_saved_model(model, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_rejects_a_model_without_class_names(tmp_path):
    import keras

    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="class_names"):
        export_saved_model(plain, tmp_path / "m")


# --- Portability ------------------------------------------------------------

_CLEAN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    # Neither this package nor Keras may be needed: only TensorFlow.
    sys.modules["recurrent_zoo"] = None
    sys.modules["keras"] = None
    import numpy as np
    import tensorflow as tf

    spec = json.loads(sys.argv[1])
    assert not tf.config.list_physical_devices("GPU")
    loaded = tf.saved_model.load(spec["path"])
    out = loaded.signatures["serving_default"](text=tf.constant(spec["texts"]))
    np.savez(spec["output"], **{k: v.numpy() for k, v in out.items()})
    loaded_packages = {n.split(".")[0] for n, m in sys.modules.items() if m}
    assert not loaded_packages & {"recurrent_zoo", "keras"}, loaded_packages
    """
)


def test_loads_and_runs_without_the_package_on_cpu(model, exported, tmp_path):
    texts = ["A moving, beautifully acted film.", "Dull and far too long.", ""]
    spec = {
        "path": str(exported / "1"),
        "texts": texts,
        "output": str(tmp_path / "out.npz"),
    }
    run_clean(_CLEAN_SCRIPT, spec, tmp_path)
    out = np.load(spec["output"], allow_pickle=True)
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba(texts), atol=1e-5
    )
    assert [s.decode() for s in out["label"]] == model.predict_labels(texts)


def test_gpu_trained_keras_lstm_exports_without_cudnn(monkeypatch, tmp_path):
    texts = ["a good film", "a bad film", "great fun", "dull and bad"]
    model = _tiny(texts=texts, cell="keras_lstm")
    expected = model.predict_proba(texts)
    # Make Keras believe a GPU is visible, as when exporting on a GPU machine.
    rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
    monkeypatch.setattr(rnn, "_is_gpu_available", lambda: True)
    # Control: a plain trace (as `model.export` does) now bakes in cuDNN,
    # which has no CPU kernel.
    spec = tf.TensorSpec([None], tf.string)
    graph = tf.function(model).get_concrete_function(spec).graph.as_graph_def()
    assert "CudnnRNNV3" in _ops(graph)

    version = export_saved_model(model, tmp_path / "ours")
    assert not {op for op in _graph_ops(version) if "Cudnn" in op}
    assert all(layer.use_cudnn == "auto" for layer in _keras_rnns(model))  # restored
    loaded = tf.saved_model.load(str(version))
    out = loaded.signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)


def _keras_rnns(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if hasattr(layer, "use_cudnn")
    ]


def test_loaded_model_has_gradients(loaded):
    # The fused kernels' custom gradients are saved: a served model can be
    # differentiated (e.g. for saliency), and loading logs no warning.
    with tf.GradientTape() as tape:
        out = loaded.serving_default(tf.constant(["a great film", "dull"]))
        p = out["probabilities"][:, 1]
    grads = tape.gradient(p, loaded.model_variables)
    assert grads and all(g is not None for g in grads)
    assert all(np.all(np.isfinite(tf.convert_to_tensor(g))) for g in grads)


def test_parity_on_1000_real_test_reviews(model, exported, test_reviews):
    test = test_reviews
    assert len(test) == 1000
    expected = model.predict_proba(test.texts)
    out = load_predictor(exported)(test.texts)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5, rtol=0)
    # A trained model, so the comparison is not between constant outputs.
    assert expected[:, 1].std() > 0.01
    assert list(out["label"]) == model.predict_labels(test.texts)


# --- Bad input: valid probabilities, or a clear error -----------------------


def test_empty_string(model, signature):
    out = _serve(signature, [""])
    _check_valid(out, 1)
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba([""]), atol=1e-6
    )


def test_only_punctuation(signature):
    out = _serve(signature, ["?!... --- ;;; (*)", ""])
    _check_valid(out, 2)
    # Punctuation is stripped, so it reads as the empty text.
    np.testing.assert_allclose(out["probabilities"][0], out["probabilities"][1])


def test_one_megabyte_review(model, signature, test_reviews):
    review = test_reviews.texts[0]
    words = re.sub(r"[^a-z ]", " ", review.lower()).split()
    big = " ".join(words * (1_000_000 // len(" ".join(words)) + 1))[:1_000_000]
    assert len(big.encode()) == 1_000_000
    _serve(signature, ["warm-up"])
    start = time.perf_counter()
    out = _serve(signature, [big])
    seconds = time.perf_counter() - start
    _check_valid(out, 1)
    # Only the first `sequence_length` words count, and cutting is cheap.
    head = " ".join(big.split()[: model.sequence_length])
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba([head]), atol=1e-5
    )
    assert seconds < 5.0, f"a 1 MB review took {seconds:.1f} s"


def test_bytes_that_are_not_utf8(model, signature):
    raw = [b"\xff\xfe great \xc3 film", b"\xed\xa0\x80 awful \x80"]
    out = _serve(signature, raw)
    _check_valid(out, 2)
    # Each bad byte reads as U+FFFD, as a decoder with errors="replace" does.
    repaired = [r.decode("utf-8", "replace") for r in raw]
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba(repaired), atol=1e-6
    )


def test_mixed_language_text(model, signature):
    text = "A great film: 素晴らしい映画, très émouvant, очень хорошо! 🎬 ¡Bravo!"
    out = _serve(signature, [text])
    _check_valid(out, 1)
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba([text]), atol=1e-6
    )


def test_empty_batch(signature):
    out = _serve(signature, np.zeros((0,), dtype=object))
    assert out["probabilities"].shape == (0, 2)
    assert out["label_id"].shape == out["label"].shape == (0,)
    assert out["probabilities"].dtype == np.float32


def test_wrong_dtype_is_a_clear_error(signature):
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a string"):
        signature(text=tf.constant([1, 2]))


@pytest.mark.parametrize("value", [["a review"], "a review"], ids=["matrix", "scalar"])
def test_wrong_rank_is_a_clear_error(signature, value):
    text = tf.constant([value]) if isinstance(value, list) else tf.constant(value)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="not compatible with expected shape"
    ):
        signature(text=text)


# --- The topic head ---------------------------------------------------------


def test_topic_model_returns_top_k(tmp_path):
    names = ["autos", "space", "hockey", "crypt", "med", "guns"]
    texts = ["car engine", "orbit launch", "puck goal", "key cipher", "doctor", "gun"]
    # Untrained: top-k only has to agree with the probabilities.
    model = _tiny("topic", texts=texts, class_names=names)
    version = export_saved_model(model, tmp_path / "topic", top_k=3)
    loaded = tf.saved_model.load(str(version))
    out = _serve(loaded.signatures["serving_default"], texts)
    assert set(out) == BINARY_OUTPUTS | TOP_K_OUTPUTS
    p = out["probabilities"]
    np.testing.assert_allclose(p, model.predict_proba(texts), atol=1e-5)
    order = np.argsort(-p, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(out["top_k_ids"], order)
    np.testing.assert_array_equal(
        out["top_k_probabilities"], np.take_along_axis(p, order, 1)
    )
    assert out["top_k_labels"].tolist() == [
        [names[i].encode() for i in row] for row in order
    ]
    np.testing.assert_array_equal(out["label_id"], out["top_k_ids"][:, 0])
    # top_k=0 leaves the top-k outputs out.
    assert set(serving_function(model, top_k=0)(tf.constant(texts))) == BINARY_OUTPUTS


# --- Invalid UTF-8 never reaches the model -----------------------------------


class _CharCount(keras.layers.Layer):
    """sigmoid(characters / 10): decodes strictly, so bad bytes raise."""

    def call(self, text):
        chars = tf.strings.unicode_decode(text, "UTF-8", errors="strict")
        return tf.sigmoid(tf.cast(chars.row_lengths(), "float32")[:, None] / 10.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def test_bytes_are_repaired_before_any_layer_reads_them():
    text = keras.Input(shape=(), dtype="string")
    model = keras.Model(text, _CharCount()(text))
    model.class_names = ("short", "long")
    raw = tf.constant([b"ab\xff", b"abc"])
    with pytest.raises(tf.errors.InvalidArgumentError):
        model(raw)  # the control: this model cannot read bad bytes itself
    out = serving_function(model)(raw)
    # "ab\xff" is read as "ab\ufffd": three characters, like "abc".
    expected = 1 / (1 + np.exp(-0.3))
    np.testing.assert_allclose(out["probabilities"][:, 1], [expected] * 2, rtol=1e-6)


def test_wide_and_deep_topic_model_serves_its_probabilities(shared_data, tmp_path):
    posts = load_corpus("20newsgroups", shared_data, "train", max_per_class=4)
    model = _tiny(
        "topic",
        texts=posts.texts,
        labels=posts.labels,
        class_names=posts.class_names,
        bag_of_words=True,
    )
    assert np.abs(model.get_layer("wide_logits").get_weights()[0]).max() > 0
    base = tmp_path / "topic"
    export_saved_model(model, base)
    loaded = tf.saved_model.load(str(base / "1"))
    texts = [*posts.texts[:5], "", "orbit shuttle launch"]
    out = _serve(loaded.signatures["serving_default"], texts)
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba(texts), atol=1e-5
    )
