"""The shipped presets load from the package, classify real reviews and
score them in bits per character as their cards say."""

import io
import zipfile

import h5py
import numpy as np
import pytest

from recurrent_zoo.data import load_imdb, load_newsgroups, load_text_documents
from recurrent_zoo.models import (
    CharLanguageModel,
    TextClassifier,
    from_preset,
    list_presets,
)
from recurrent_zoo.models.registry import PRESET_DIR

CLASSIFIERS = ("imdb_sentiment", "newsgroups_topic")


def test_cards_describe_shipped_files():
    cards = list_presets()
    assert {*CLASSIFIERS, "imdb_char_lm"} <= set(cards)
    for card in (cards[name] for name in CLASSIFIERS):
        assert card["command"].startswith("python benchmarks/accuracy.py")
        assert 0.5 < card["test_accuracy"] <= 1.0
        # The shipped file's own score, beside the float32 model's.
        assert card["test_accuracy"] == pytest.approx(
            card["float32_test_accuracy"], abs=0.003
        )


def test_the_char_lm_card_gives_the_shipped_file_and_its_training():
    card = list_presets()["imdb_char_lm"]
    assert card["command"].startswith("python benchmarks/char_lm.py")
    assert card["train_command"].startswith("recurrent-zoo train char_lm")
    assert card["test_characters"] == 31_844_420  # all 25,000 test reviews
    if "float32_test_bits_per_character" in card:
        # float16 storage moves the score by far less than a hundredth of a bit.
        assert card["test_bits_per_character"] == pytest.approx(
            card["float32_test_bits_per_character"], abs=0.005
        )
    else:  # the run scored part of the test, or under bfloat16: named so
        run_test = card["run_test"]
        assert run_test["characters"] < card["test_characters"] or (
            run_test["dtype_policy"] != "float32"
        )


@pytest.mark.parametrize("name", [*CLASSIFIERS, "imdb_char_lm"])
def test_presets_store_float16_and_load_as_float32(name):
    path = PRESET_DIR / f"{name}.keras"
    with zipfile.ZipFile(path) as archive:
        weights = archive.read("model.weights.h5")
    stored = []
    with h5py.File(io.BytesIO(weights), "r") as f:
        f.visititems(
            lambda _, item: (
                stored.append(item.dtype)
                if isinstance(item, h5py.Dataset) and item.dtype.kind == "f"
                else None
            )
        )
    assert stored and set(stored) == {np.dtype(np.float16)}
    model = from_preset(name, compile=False)
    assert {v.dtype for v in model.weights if "float" in v.dtype} == {"float32"}
    assert path.stat().st_size == list_presets()[name]["size_bytes"]


def test_imdb_sentiment_classifies_real_test_reviews(shared_data):
    model = from_preset("imdb_sentiment", compile=False)
    assert isinstance(model, TextClassifier)
    assert model.class_names == ("neg", "pos")
    # 300 of the 25,000 test reviews the card's accuracy was measured on;
    # a slice this size lands within a few points of it.
    test = load_imdb(shared_data, "test", max_per_class=150, seed=1)
    predicted = model.predict_proba(test.texts).argmax(axis=1)
    accuracy = float(np.mean(predicted == test.labels))
    card = list_presets()["imdb_sentiment"]
    assert accuracy > card["test_accuracy"] - 0.06, accuracy


def test_newsgroups_topic_classifies_real_test_posts(shared_data):
    model = from_preset("newsgroups_topic", compile=False)
    test = load_newsgroups(shared_data, "test", max_per_class=15, seed=1)
    assert model.class_names == test.class_names
    predicted = model.predict_proba(test.texts).argmax(axis=1)
    accuracy = float(np.mean(predicted == test.labels))
    # 300 posts: a wider margin than for IMDB's two classes.
    assert accuracy > list_presets()["newsgroups_topic"]["test_accuracy"] - 0.1


def test_imdb_char_lm_scores_real_test_reviews_near_its_card(shared_data):
    model = from_preset("imdb_char_lm", compile=False)
    assert isinstance(model, CharLanguageModel)
    # 40 of the test reviews the card was measured on (about 50,000
    # characters): reviews differ, so the slice lands near the card, not on it.
    test = load_text_documents(shared_data, "test", max_documents=40)
    bits = model.bits_per_character(test.texts)
    card = list_presets()["imdb_char_lm"]
    assert abs(bits - card["test_bits_per_character"]) < 0.15, bits
    # The same characters in a random order: no words left to predict.
    rng = np.random.default_rng(0)
    shuffled = ["".join(rng.permutation(list(t))) for t in test.texts[:8]]
    assert model.bits_per_character(shuffled) > bits + 1.5


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="imdb_sentiment"):
        from_preset("imdb_sentimnet")
