"""AttentionPooling against a NumPy oracle of e_t = v^T tanh(W h_t + b)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import run_layer_checks

from recurrent_zoo.layers.attention_pooling import AttentionPooling

B, T, D, UNITS = 2, 4, 5, 3
MASK = np.array([[True, True, False, True], [True, False, False, False]])


def _data(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, D)).astype("float32")


def _layer(**kwargs):
    kwargs.setdefault("bias_initializer", "random_normal")
    return AttentionPooling(UNITS, **kwargs)


def np_pooling(layer, x, mask=None):
    """e_t = v^T tanh(W h_t + b); a = softmax over unmasked t; out = sum a_t h_t."""
    w, v = (
        np.asarray(layer.kernel, "float64"),
        np.asarray(layer.score_kernel, "float64"),
    )
    b = np.zeros(UNITS) if layer.bias is None else np.asarray(layer.bias, "float64")
    scores = np.tanh(x @ w + b) @ v
    mask = np.ones(scores.shape, bool) if mask is None else mask
    weights = np.zeros_like(scores)
    for i in range(len(x)):
        if mask[i].any():
            e = np.exp(scores[i, mask[i]] - scores[i, mask[i]].max())
            weights[i, mask[i]] = e / e.sum()
    return np.einsum("bt,btd->bd", weights, x), weights


def _call(layer, x, **kwargs):
    out = layer(x, return_attention_scores=True, **kwargs)
    return tuple(keras.ops.convert_to_numpy(t) for t in out)


@pytest.mark.parametrize("mask", [None, MASK], ids=["no_mask", "mask"])
def test_forward_matches_numpy(mask):
    x = _data()
    layer = _layer()
    pooled, weights = _call(layer, x, mask=mask)
    ref_pooled, ref_weights = np_pooling(layer, x, mask)
    assert pooled.shape == (B, D) and weights.shape == (B, T)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(pooled, ref_pooled, atol=1e-5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    if mask is not None:
        assert np.all(weights[~mask] == 0)
    # Without the flag only the pooled vector comes back.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x, mask=mask)), pooled
    )


def test_no_bias_matches_numpy():
    x = _data()
    layer = AttentionPooling(UNITS, use_bias=False)
    pooled, weights = _call(layer, x)
    assert layer.bias is None
    ref_pooled, ref_weights = np_pooling(layer, x)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(pooled, ref_pooled, atol=1e-5)


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    x = _data()
    mask = np.array([[True, True, True, False], [False] * T])
    layer = _layer()
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        pooled, weights = layer(x_t, mask=mask, return_attention_scores=True)
        loss = tf.reduce_sum(pooled**2) + tf.reduce_sum(weights)
    grads = tape.gradient(loss, [x_t, *layer.trainable_weights])
    assert np.all(pooled.numpy()[1] == 0) and np.all(weights.numpy()[1] == 0)
    assert np.all(np.isfinite(pooled.numpy()))
    for grad in grads:
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
    np.testing.assert_allclose(pooled.numpy(), np_pooling(layer, x, mask)[0], atol=1e-5)


def test_mask_from_embedding_and_weights_for_plotting():
    tokens = np.array([[3, 7, 2, 0], [5, 0, 0, 0]], dtype="int32")
    inputs = keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(10, D, mask_zero=True)
    embedded = embedding(inputs)
    pool = _layer()
    pooled, weights = pool(embedded, return_attention_scores=True)
    assert getattr(pooled, "_keras_mask", None) is None
    assert pool.compute_mask(embedded, embedded._keras_mask) is None
    classifier = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    # The plotting model shares the classifier's graph and weights.
    plot_model = keras.Model(inputs, weights)
    classifier(tokens)
    plotted = np.asarray(plot_model(tokens))
    assert plotted.shape == (B, T)
    np.testing.assert_array_equal(plotted == 0, tokens == 0)
    np.testing.assert_allclose(plotted.sum(-1), 1.0, atol=1e-6)
    x = np.asarray(embedding(tokens))
    np.testing.assert_allclose(plotted, np_pooling(pool, x, tokens != 0)[1], atol=1e-5)
    # Eagerly, `attention_weights` picks up the mask carried by the tensor.
    eager = np.asarray(pool.attention_weights(embedding(tokens)))
    np.testing.assert_allclose(eager, plotted, atol=1e-6)


def test_dropout_only_in_training():
    x = _data()
    layer = _layer(dropout=0.5, seed=3)
    pooled, clean = _call(layer, x)
    np.testing.assert_allclose(pooled, np_pooling(layer, x)[0], atol=1e-5)
    np.testing.assert_array_equal(_call(layer, x, training=False)[1], clean)
    _, dropped = _call(layer, x, training=True)
    assert np.any(dropped == 0)
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], clean[kept] / 0.5, rtol=1e-5)


def test_shapes():
    layer = _layer()
    assert layer.compute_output_shape((None, 7, D)) == (None, D)
    pooled, weights = layer(keras.Input((None, D)), return_attention_scores=True)
    assert tuple(pooled.shape) == (None, D) and tuple(weights.shape) == (None, None)


def test_layer_checks(tmp_path):
    run_layer_checks(lambda: AttentionPooling(3), _data(), tmp_path, mask=MASK)


@pytest.mark.parametrize("units", [0, -1, 1.5, False, "4"])
def test_bad_units(units):
    with pytest.raises(ValueError, match=f"units={units!r}"):
        AttentionPooling(units)


@pytest.mark.parametrize("dropout", [-0.5, 1.0, "0.2"])
def test_bad_dropout(dropout):
    with pytest.raises(ValueError, match=f"dropout={dropout!r}"):
        AttentionPooling(3, dropout=dropout)


def test_bad_inputs():
    x = _data()
    with pytest.raises(ValueError, match="rank 3"):
        AttentionPooling(3)(x[:, 0])
    with pytest.raises(ValueError, match="rank 3"):
        AttentionPooling(3)(x[..., None])
    with pytest.raises(ValueError, match="floating-point"):
        AttentionPooling(3)(x.astype("int32"))
    with pytest.raises(ValueError, match="floating-point"):
        AttentionPooling(3)(keras.Input((T, D), dtype="int32"))
    with pytest.raises(ValueError, match="feature size"):
        AttentionPooling(3)(keras.Input((T, None)))
