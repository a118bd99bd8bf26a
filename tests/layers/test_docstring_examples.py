"""Every `Example:` in the layers' docstrings runs and prints what it claims."""

import doctest
import importlib

import keras
import numpy as np
import pytest

MODULES = [
    "recurrent_zoo.layers.attention_pooling",
    "recurrent_zoo.layers.bag_of_words",
    "recurrent_zoo.layers.bahdanau_attention",
    "recurrent_zoo.layers.bidirectional",
    "recurrent_zoo.layers.hashed_bigrams",
    "recurrent_zoo.layers.layer_norm_lstm",
    "recurrent_zoo.layers.layer_norm_lstm_cell",
    "recurrent_zoo.layers.min_gru",
    "recurrent_zoo.layers.min_lstm",
    "recurrent_zoo.layers.naive_bayes_ngrams",
    "recurrent_zoo.layers.simple_rnn",
    "recurrent_zoo.layers.simple_rnn_cell",
    "recurrent_zoo.layers.trim_padding",
    "recurrent_zoo.models.language_model",
    "recurrent_zoo.models.registry",
    "recurrent_zoo.models.text_classifier",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    globs = {"keras": keras, "np": np, **vars(module)}
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, globs=globs) if t.examples]
    assert tests, f"{name} has no docstring example"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}"
