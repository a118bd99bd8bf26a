"""The search space: its defaults, its conditions and the models it builds."""

import doctest

import keras
import keras_tuner as kt
import numpy as np
import pytest

from recurrent_zoo.catalog import task_names
from recurrent_zoo.data import load_imdb
from recurrent_zoo.data.batching import bucketed_dataset
from recurrent_zoo.models import ARCHITECTURES, get
from recurrent_zoo.tuning import TextClassifierHyperModel, build_vocabulary

TINY = dict(vocabulary_size=200, sequence_length=16, attention_units=4)


def _config(model):
    config = model.get_config()
    config.pop("name")
    return config


@pytest.mark.parametrize("task", sorted(task_names("classification")))
def test_default_build_is_the_prebuilt_model(task):
    hypermodel = TextClassifierHyperModel(task)
    model = hypermodel.build(kt.HyperParameters())
    assert _config(model) == _config(get(task))
    assert model.optimizer.learning_rate.numpy() == pytest.approx(
        ARCHITECTURES[task].learning_rate
    )


def test_search_space_is_described_with_defaults_and_conditions():
    prebuilt = ARCHITECTURES["sentiment"]
    space = {
        hp["name"]: hp for hp in TextClassifierHyperModel("sentiment").search_space()
    }
    assert list(space) == [
        "num_layers",
        "units_0",
        "units_1",
        "embedding_dim",
        "dropout",
        "learning_rate",
    ]
    assert space["num_layers"] == {
        "name": "num_layers",
        "type": "int",
        "values": [1, 2],
        "default": len(prebuilt.config["units"]),
        "condition": None,
    }
    assert space["units_0"]["values"] == [16, 32, 64, 128, 256]
    assert space["units_0"]["default"] == prebuilt.config["units"][0]
    assert space["units_0"]["condition"] is None
    # The second layer's size exists only for two-layer models.
    assert space["units_1"]["condition"] == {"num_layers": [2]}
    assert space["embedding_dim"]["values"] == [32, 64, 128, 256]
    assert space["embedding_dim"]["default"] == prebuilt.config["embedding_dim"]
    assert space["dropout"]["type"] == "float"
    assert space["dropout"]["values"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert space["dropout"]["default"] == get("sentiment").dropout
    assert space["learning_rate"] == {
        "name": "learning_rate",
        "type": "choice",
        "values": [0.001, 0.003, 0.01],
        "default": prebuilt.learning_rate,
        "condition": None,
    }


def test_trial_values_become_model_arguments():
    hypermodel = TextClassifierHyperModel("topic", max_layers=3, **TINY)
    hp = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(
        num_layers=2, units_0=32, units_1=16, units_2=256, embedding_dim=64
    )
    hp.values.update(dropout=0.1 + 0.1 + 0.1, learning_rate=0.01)
    arguments = hypermodel.model_arguments(hp)
    # units_2 belongs to a third layer this trial does not have.
    assert arguments["units"] == (32, 16)
    assert arguments["dropout"] == 0.3  # not 0.30000000000000004
    model = hypermodel.build(hp)
    assert model.units == (32, 16) and model.embedding_dim == 64
    assert model.num_classes == 20
    assert model.optimizer.learning_rate.numpy() == pytest.approx(0.01)


def test_defaults_outside_narrowed_choices_fall_back_to_the_nearest():
    hypermodel = TextClassifierHyperModel(
        "sentiment",
        units=(8, 4),
        embedding_dims=(16,),
        dropout_range=(0.0, 0.2, 0.1),
        learning_rates=(1e-4, 1e-2),
    )
    assert hypermodel.defaults == {
        "num_layers": 1,
        "units_0": 8,
        "units_1": 8,
        "embedding_dim": 16,
        "dropout": 0.2,
        # Nearest to 3e-3 in log space (linearly, 1e-4 would be nearer).
        "learning_rate": 1e-2,
    }
    space = hypermodel.search_space()
    assert space[1]["values"] == [4, 8]


def test_the_cell_is_searched_when_cells_are_given():
    cells = ("layer_norm_gru", "layer_norm_lstm", "gru")
    hypermodel = TextClassifierHyperModel("sentiment", cells=cells, **TINY)
    space = {hp["name"]: hp for hp in hypermodel.search_space()}
    assert space["cell"]["values"] == list(cells)
    # The prebuilt cell is the default when it is among the choices.
    assert space["cell"]["default"] == "layer_norm_lstm"
    hp = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values["cell"] = "layer_norm_gru"
    model = hypermodel.build(hp)
    assert model.cell == "layer_norm_gru"
    encoder = model.get_layer("bidirectional_0").forward_layer
    assert type(encoder).__name__ == "LayerNormGRU" and encoder.cell.layer_norm
    # Otherwise the first choice; and without `cells` the cell is not searched.
    only_gru = TextClassifierHyperModel("sentiment", cells=("gru",))
    assert only_gru.defaults["cell"] == "gru"
    assert "cell" not in TextClassifierHyperModel("sentiment").defaults


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(task="poetry"), "unknown task"),
        (dict(embedding_dim=64), "cannot be held fixed"),
        (dict(dropout=0.1), "cannot be held fixed"),
        (dict(learning_rate=0.1), "cannot be held fixed"),
        (dict(max_layers=0), "max_layers"),
        (dict(dropout_range=(0.4, 0.2, 0.1)), "dropout_range"),
        (dict(dropout_range=(0.0, 0.5, 0.0)), "dropout_range"),
        (dict(embedding_dims=()), "embedding_dims"),
        (dict(learning_rates=(0.0, 1e-3)), "learning_rates"),
        (dict(cells=("lstm", "transformer")), "cells=.*transformer"),
        (dict(cells=()), "cells"),
        (dict(cells=("gru", "lstm"), cell="gru"), "cannot be held fixed"),
    ],
)
def test_rejects_a_bad_space(arguments, message):
    arguments = {"task": "sentiment", **arguments}
    with pytest.raises(ValueError, match=message):
        TextClassifierHyperModel(**arguments)


@pytest.fixture(scope="module")
def reviews(shared_data):
    return load_imdb(shared_data, "train", max_per_class=20, seed=0)


def test_shared_vocabulary_is_what_adapt_would_build(reviews):
    vocabulary = build_vocabulary(reviews.texts, 300)
    assert len(vocabulary) == 298 and "" not in vocabulary
    assert "[UNK]" not in vocabulary and vocabulary[0] == "the"
    adapted = get("sentiment", **TINY | {"vocabulary_size": 300})
    adapted.adapt(reviews.texts)
    given = get("sentiment", vocabulary=vocabulary, **TINY | {"vocabulary_size": 300})
    assert given.vectorizer.get_vocabulary() == adapted.vectorizer.get_vocabulary()
    texts = np.asarray(reviews.texts[:8], dtype=object)
    np.testing.assert_array_equal(given.vectorizer(texts), adapted.vectorizer(texts))


def test_fit_adapts_each_model_when_no_vocabulary_is_given(reviews):
    hypermodel = TextClassifierHyperModel(
        "sentiment", units=(4,), embedding_dims=(8,), **TINY
    )
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    assert len(model.vectorizer.get_vocabulary()) <= 2  # nothing adapted yet
    data = bucketed_dataset(reviews.texts, reviews.labels, 16, max_length=16)
    # No epoch: the adaptation happens before fitting (and costs no trace).
    history = hypermodel.fit(hp, model, data, epochs=0, shuffle=False, verbose=0)
    assert isinstance(history, keras.callbacks.History)
    assert len(model.vectorizer.get_vocabulary()) == 200
    assert model.vectorizer.get_vocabulary()[2:] == build_vocabulary(reviews.texts, 200)


def test_fit_sets_the_idf_of_a_bag_of_words_model_with_a_shared_vocabulary(reviews):
    vocabulary = build_vocabulary(reviews.texts, 200)
    hypermodel = TextClassifierHyperModel(
        "sentiment",
        vocabulary=vocabulary,
        units=(4,),
        embedding_dims=(8,),
        bag_of_words=True,
        **TINY,
    )
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    data = bucketed_dataset(reviews.texts, reviews.labels, 16, max_length=16)
    hypermodel.fit(hp, model, data, epochs=0, shuffle=False, verbose=0)
    # The same IDF as a model that adapted on the texts by itself.
    reference = get("sentiment", **TINY, bag_of_words=True)
    reference.adapt(reviews.texts)
    assert model.vectorizer.get_vocabulary() == reference.vectorizer.get_vocabulary()
    np.testing.assert_allclose(
        model.get_layer("bag_of_words").idf.numpy(),
        reference.get_layer("bag_of_words").idf.numpy(),
        rtol=1e-6,
    )


def test_docstring_example_runs():
    import recurrent_zoo.tuning.hypermodel as module

    globs = {"keras_tuner": kt, **vars(module)}
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in doctest.DocTestFinder().find(module, globs=globs) if t.examples]
    assert tests
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
