"""The character language model against a NumPy oracle and slow re-runs."""

import inspect
import math

import keras
import numpy as np
import pytest

from recurrent_zoo.models import CharLanguageModel, get
from recurrent_zoo.models.char_language_model import pick_next
from recurrent_zoo.models.characters import BOUNDARY, UNKNOWN, CharacterVocabulary

TEXT = "the cat sat on the mat. the dog ate the hat!\n"


def _model(cell="lstm", units=(6, 5), seed=0, **kwargs):
    model = CharLanguageModel(cell=cell, units=units, embedding_dim=4, **kwargs)
    model.adapt([TEXT])
    # Random, larger-than-initial weights: outputs far from uniform, so the
    # comparisons below are not won by a near-constant model.
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(0, 0.8, w.shape).astype("float32") for w in model.get_weights()]
    )
    return model


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _numpy_log_probs(model, stream):
    """Log-probabilities of every next id, from the equations (gate order
    i, f, g, o; no layer normalization), in float64."""
    x = model.embedding.embeddings.numpy().astype(np.float64)[stream]
    for layer in model.recurrent:
        cell = layer.cell
        w, u, b = (
            v.numpy().astype(np.float64)
            for v in (cell.kernel, cell.recurrent_kernel, cell.bias)
        )
        h = c = np.zeros(cell.units)
        out = []
        for x_t in x:
            i, f, g, o = np.split(x_t @ w + h @ u + b, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            out.append(h)
        x = np.array(out)
    logits = x @ model.head.kernel.numpy() + model.head.bias.numpy()
    logits = logits - logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def test_bits_per_character_matches_a_numpy_lstm():
    model = _model()
    texts = ["the cat", "", "hat", "a zebra ☃ sat", "t"]  # z, b, ☃ are unseen
    nats, count = 0.0, 0
    for text in texts:
        ids = [model.vocabulary.tokens.index(c) if c in TEXT else UNKNOWN for c in text]
        stream = [BOUNDARY, *ids]
        log_p = _numpy_log_probs(model, stream[:-1]) if text else np.zeros((0, 1))
        nats -= sum(log_p[t, stream[t + 1]] for t in range(len(text)))
        count += len(text)
    expected = nats / count / math.log(2)
    # Small batches and chunks: texts share batches, long ones span chunks.
    got = model.bits_per_character(texts, batch_size=2, chunk_length=3)
    assert got == pytest.approx(expected, abs=1e-5)
    assert model.bits_per_character(texts) == pytest.approx(expected, abs=1e-5)


def test_nats_are_the_numpy_lstms_surprise_across_chunks():
    model = _model()
    stream = model.stream("the dog sat on the hat")
    log_p = _numpy_log_probs(model, stream[:-1])
    expected = -log_p[np.arange(len(stream) - 1), stream[1:]]
    # Two calls, the state carried: the second must continue the first.
    first, states = model.nats(stream[None, :5], stream[None, 1:6], None)
    rest, _ = model.nats(stream[None, 5:-1], stream[None, 6:], states)
    got = np.concatenate([first[0], rest[0]])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_greedy_generation_is_the_argmax_chain_of_full_reruns():
    model = _model(cell="layer_norm_lstm", seed=1)
    prompt, generated = "the ", model.generate("the ", 12, temperature=0)
    ids = list(model.stream(prompt))
    expected = []
    size = len(model.vocabulary)
    for _ in range(12):
        # The slow oracle: the whole prefix again, through the sequence path.
        logits = keras.ops.convert_to_numpy(model(np.array([ids])))[0, -1]
        best = 3 + int(np.argmax(logits[3:size]))
        ids.append(best)
        expected.append(best)
    assert generated == model.vocabulary.decode(expected)
    assert len(generated) == 12


@pytest.mark.parametrize(
    "cell", ["gru", "simple_rnn", "keras_lstm", "min_gru", "min_lstm"]
)
def test_streamed_steps_equal_the_sequence_path_for_other_cells(cell):
    model = _model(cell=cell, seed=2)
    ids = model.stream("the dog ate")
    whole = keras.ops.convert_to_numpy(model(ids[None, :]))[0]
    logits, states = model.run(ids[None, :4], None)
    pieces = [logits[0]]
    for t in range(4, len(ids)):
        logits, states = model.run(ids[None, t : t + 1], states)
        pieces.append(logits[0])
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)


def test_seeded_sampling_repeats_and_top_k_one_is_greedy():
    model = _model(seed=3)
    first = model.generate("the", 40, temperature=1.5, seed=7)
    assert model.generate("the", 40, temperature=1.5, seed=7) == first
    assert model.generate("the", 40, temperature=1.5, seed=8) != first
    assert set(first) <= set(TEXT)
    greedy = model.generate("the", 10, temperature=0)
    assert model.generate("the", 10, temperature=2.0, top_k=1, seed=5) == greedy
    assert model.generate("", 0) == ""


def test_pick_next_draws_from_the_tempered_softmax():
    logits = np.array([9.0, 9.0, 9.0, 1.0, 2.0, 0.0, 3.0])  # ids 0-2 reserved
    rng = np.random.default_rng(0)
    draws = np.array([pick_next(logits, 7, 0.5, None, rng) for _ in range(20000)])
    p = np.exp(logits[3:] / 0.5)
    p /= p.sum()
    observed = np.bincount(draws - 3, minlength=4) / len(draws)
    np.testing.assert_allclose(observed, p, atol=0.012)
    top2 = {pick_next(logits, 7, 1.0, 2, rng) for _ in range(300)}
    assert top2 == {4, 6}
    # Ids past the vocabulary (unused capacity) are never drawn.
    assert {pick_next(logits, 5, 1.0, None, rng) for _ in range(300)} <= {3, 4}
    assert pick_next(logits, 7, 0, None, rng) == 6


def test_vocabulary_orders_by_frequency_then_code_point():
    vocabulary = CharacterVocabulary.from_texts(["bba", "ç世c", "😀"], 4)
    assert vocabulary.characters == ["b", "a", "c", "ç"]
    assert vocabulary.encode("abz😀").tolist() == [4, 3, UNKNOWN, UNKNOWN]
    assert vocabulary.decode([0, 1, 2, 3, 6, 99]) == "bç"
    # A lone surrogate (left by decoding bad bytes with surrogateescape).
    assert vocabulary.encode("\udcff").tolist() == [UNKNOWN]
    with pytest.raises(ValueError, match="'ab'"):
        CharacterVocabulary(["ab"])
    with pytest.raises(ValueError, match="repeats"):
        CharacterVocabulary(["a", "a"])


def test_bad_arguments_are_value_errors_quoting_the_value():
    model = _model()
    with pytest.raises(ValueError, match="all empty"):
        model.bits_per_character(["", ""])
    with pytest.raises(ValueError, match="list of strings"):
        model.bits_per_character("the cat")
    with pytest.raises(ValueError, match="-1"):
        model.generate("a", 3, temperature=-1)
    with pytest.raises(ValueError, match="nan"):
        model.generate("a", 3, temperature=float("nan"))
    with pytest.raises(ValueError, match="top_k=0"):
        model.generate("a", 3, top_k=0)
    with pytest.raises(ValueError, match="-2"):
        model.generate("a", -2)
    with pytest.raises(ValueError, match="adapt"):
        CharLanguageModel(units=(4,), embedding_dim=2).generate("a", 3)
    with pytest.raises(ValueError, match="max_characters=9"):
        CharLanguageModel(units=(4,), max_characters=5).adapt([TEXT], 9)
    with pytest.raises(ValueError, match="units"):
        CharLanguageModel(units=())


def test_long_lines_and_unseen_text_give_finite_scores():
    model = _model(units=(4,))
    line = "".join(np.random.default_rng(0).choice(list(TEXT + "ZQ€"), 30_000))
    bits = model.bits_per_character([line], chunk_length=4096)
    assert math.isfinite(bits) and bits > 0
    assert math.isfinite(model.bits_per_character(["€€€ unseen ÆØÅ"]))


def test_saved_model_keeps_config_vocabulary_and_scores(tmp_path):
    model = _model(units=(5,), max_characters=40, sequence_length=16, dropout=0.1)
    arguments = set(inspect.signature(CharLanguageModel.__init__).parameters)
    assert arguments - {"self", "kwargs"} <= set(model.get_config())
    model.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras")
    assert loaded.get_config() == model.get_config()
    assert loaded.vocabulary.characters == model.vocabulary.characters
    assert loaded.bits_per_character([TEXT]) == pytest.approx(
        model.bits_per_character([TEXT]), abs=1e-6
    )


def test_registry_builds_the_char_lm():
    model = get("char_lm", cell="gru", units=(8,), embedding_dim=4)
    assert isinstance(model, CharLanguageModel)
    assert model.cell == "gru" and model.units == (8,)
