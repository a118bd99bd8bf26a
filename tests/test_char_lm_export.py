"""The character language model's SavedModel against the Keras model it came from."""

import json
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from clean_process import run_clean

from recurrent_zoo.export import export_saved_model
from recurrent_zoo.export.char_lm import CHUNK, char_lm_functions
from recurrent_zoo.models import CharLanguageModel

TEXT = "hello world, héllo wörld 😀 the cat sat on the mat"


def _model(cell: str) -> CharLanguageModel:
    keras.utils.set_random_seed(0)
    model = CharLanguageModel(cell=cell, units=(8, 6), embedding_dim=4)
    model.adapt([TEXT])
    return model


@pytest.fixture(scope="module")
def model():
    return _model("layer_norm_lstm")


@pytest.fixture(scope="module")
def functions(model):
    return char_lm_functions(model)


def _generate(functions, prompt, length, temperature=1.0, top_k=0, seed=0):
    out = functions["generate"](
        tf.constant(prompt),
        tf.constant(length, tf.int32),
        tf.constant(temperature, tf.float32),
        tf.constant(top_k, tf.int32),
        tf.constant(seed, tf.int64),
    )
    return out["text"].numpy().decode("utf-8")


# Each cell family's path: the fused kernel, the GRU kernel, the parallel
# scan, and Keras's own loop.
@pytest.mark.parametrize("cell", ["layer_norm_lstm", "gru", "min_gru", "keras_lstm"])
def test_scores_equal_bits_per_character(cell):
    model = _model(cell)
    # Unknown characters ("z", "q"), an empty text, and one longer than a
    # chunk (the state carried across chunks).
    texts = ["hello", "", "wörld 😀 zzq", "the cat " * (CHUNK // 4)]
    got = char_lm_functions(model)["serving_default"](tf.constant(texts))
    expected = [model.bits_per_character([t]) if t else 0.0 for t in texts]
    np.testing.assert_allclose(got["bits_per_character"], expected, atol=1e-5)
    assert got["characters"].numpy().tolist() == [len(t) for t in texts]
    np.testing.assert_allclose(
        got["bits"], np.array(expected) * [len(t) for t in texts], rtol=1e-5
    )


def test_invalid_utf8_is_scored_as_the_replacement_character(model, functions):
    got = functions["serving_default"](tf.constant([b"ab\xffc"]))
    expected = model.bits_per_character(["ab\ufffdc"])
    np.testing.assert_allclose(got["bits_per_character"], [expected], atol=1e-5)


@pytest.mark.parametrize("prompt", ["", "hel", "wörld 😀"])
def test_greedy_generation_equals_the_model(model, functions, prompt):
    expected = model.generate(prompt, 30, temperature=0)
    assert _generate(functions, prompt, 30, temperature=0.0) == expected
    # top_k=1 leaves only the most likely character to draw.
    assert _generate(functions, prompt, 30, top_k=1, seed=5) == expected


def test_seeded_draws_repeat_and_differ_by_seed(model, functions):
    first = _generate(functions, "the ", 40, seed=7)
    assert _generate(functions, "the ", 40, seed=7) == first
    assert _generate(functions, "the ", 40, seed=8) != first
    assert len(first) == 40 and set(first) <= set(model.vocabulary.characters)
    assert _generate(functions, "the ", 0) == ""


def test_top_k_draws_only_among_the_k_most_likely(model, functions):
    logits, _ = model.run(model.stream("the")[None, :], None)
    first = 3  # the reserved ids
    scores = logits[0, -1, first : len(model.vocabulary)]
    allowed = {model.vocabulary.characters[i] for i in np.argsort(-scores)[:2]}
    drawn = {_generate(functions, "the", 1, top_k=2, seed=s) for s in range(40)}
    assert drawn <= allowed and len(drawn) == 2


def test_negative_length_is_refused(functions):
    with pytest.raises(tf.errors.InvalidArgumentError, match="length must be >= 0"):
        _generate(functions, "a", -1)


_CLEAN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    # Neither this package nor Keras may be needed: only TensorFlow.
    sys.modules["recurrent_zoo"] = None
    sys.modules["keras"] = None
    import tensorflow as tf
    spec = json.loads(sys.argv[1])
    loaded = tf.saved_model.load(spec["path"])
    scored = loaded.signatures["serving_default"](text=tf.constant(spec["texts"]))
    generated = loaded.signatures["generate"](
        prompt=tf.constant("hel"), length=tf.constant(20),
        temperature=tf.constant(0.0), top_k=tf.constant(0),
        seed=tf.constant(0, tf.int64))
    loaded_packages = {n.split(".")[0] for n, m in sys.modules.items() if m}
    assert not loaded_packages & {"recurrent_zoo", "keras"}, loaded_packages
    print(json.dumps({
        "bits": scored["bits_per_character"].numpy().tolist(),
        "text": generated["text"].numpy().decode("utf-8"),
    }))
    """
)


def test_served_without_the_package(model, tmp_path):
    path = export_saved_model(model, tmp_path / "lm")
    metadata = json.loads((path / "assets.extra/recurrent_zoo.json").read_text())
    assert metadata["signatures"] == ["serving_default", "generate"]
    texts = ["hello world", "the mat"]
    spec = {"path": str(path), "texts": texts}
    result = run_clean(_CLEAN_SCRIPT, spec, tmp_path)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(
        out["bits"], [model.bits_per_character([t]) for t in texts], atol=1e-5
    )
    assert out["text"] == model.generate("hel", 20, temperature=0)


def test_a_model_without_vocabulary_is_refused(tmp_path):
    model = CharLanguageModel(cell="lstm", units=(4,), embedding_dim=2)
    with pytest.raises(ValueError, match="no vocabulary yet"):
        export_saved_model(model, tmp_path / "lm")
