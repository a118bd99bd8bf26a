"""BahdanauAttention and masked_softmax against a NumPy oracle of the equations."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import run_layer_checks

from recurrent_zoo.layers.bahdanau_attention import BahdanauAttention, masked_softmax

B, TQ, TV, DQ, DV, DK, UNITS = 2, 3, 4, 5, 5, 5, 3


def _data(seed=0, dk=None):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(B, TQ, DQ)).astype("float32")
    value = rng.normal(size=(B, TV, DV)).astype("float32")
    key = None if dk is None else rng.normal(size=(B, TV, dk)).astype("float32")
    return query, value, key


def _layer(**kwargs):
    # A non-zero bias so the oracle also checks where the bias enters.
    kwargs.setdefault("bias_initializer", "random_normal")
    return BahdanauAttention(UNITS, **kwargs)


def _np_softmax(scores, mask):
    weights = np.zeros_like(scores, dtype="float64")
    for index in np.ndindex(scores.shape[:-1]):
        keep = mask[index]
        if keep.any():
            e = np.exp(scores[index][keep] - scores[index][keep].max())
            weights[index][keep] = e / e.sum()
    return weights


def np_bahdanau(layer, query, value, key=None, query_mask=None, value_mask=None):
    """score_ij = v^T tanh(W_q q_i + W_k k_j + b); a = softmax_j; c_i = sum a v_j."""
    key = value if key is None else key
    wq, wk, v = (
        np.asarray(w, "float64")
        for w in (layer.query_kernel, layer.key_kernel, layer.score_kernel)
    )
    b = np.zeros(UNITS) if layer.bias is None else np.asarray(layer.bias, "float64")
    squeeze = query.ndim == 2
    q = query[:, None] if squeeze else query
    scores = np.einsum(
        "bqvu,u->bqv",
        np.tanh((q @ wq + b)[:, :, None, :] + (key @ wk)[:, None, :, :]),
        v,
    )
    if value_mask is None:
        value_mask = np.ones((len(q), key.shape[1]), bool)
    full_mask = np.broadcast_to(value_mask[:, None, :], scores.shape)
    weights = _np_softmax(scores, full_mask)
    context = weights @ value
    if query_mask is not None:
        keep = np.reshape(query_mask, (len(q), -1))[..., None]
        context, weights = context * keep, weights * keep
    if squeeze:
        context, weights = context[:, 0], weights[:, 0]
    return context, weights


def _call(layer, inputs, **kwargs):
    out = layer(inputs, return_attention_scores=True, **kwargs)
    return tuple(keras.ops.convert_to_numpy(t) for t in out)


def test_forward_matches_numpy_without_mask():
    query, value, _ = _data()
    layer = _layer()
    context, weights = _call(layer, [query, value])
    ref_context, ref_weights = np_bahdanau(layer, query, value)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    assert context.shape == (B, TQ, DV) and weights.shape == (B, TQ, TV)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


def test_separate_key_and_no_bias_match_numpy():
    query, value, key = _data(dk=7)
    layer = BahdanauAttention(UNITS, use_bias=False)
    context, weights = _call(layer, [query, value, key])
    assert layer.bias is None and tuple(layer.key_kernel.shape) == (7, UNITS)
    ref_context, ref_weights = np_bahdanau(layer, query, value, key)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


def test_forward_matches_numpy_with_masks():
    query, value, _ = _data()
    query_mask = np.array([[True, True, False], [True, False, True]])
    value_mask = np.array([[True, True, True, False], [False, True, False, True]])
    layer = _layer()
    context, weights = _call(layer, [query, value], mask=[query_mask, value_mask])
    ref_context, ref_weights = np_bahdanau(
        layer, query, value, query_mask=query_mask, value_mask=value_mask
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # Exactly zero, not merely tiny.
    assert np.all(weights[np.broadcast_to(~value_mask[:, None], weights.shape)] == 0)
    assert np.all(weights[~query_mask] == 0) and np.all(context[~query_mask] == 0)
    np.testing.assert_allclose(weights[query_mask].sum(-1), 1.0, atol=1e-6)


def test_key_mask_is_combined_with_value_mask():
    query, value, _ = _data()
    value_mask = np.array([[True, True, True, False], [True, True, True, True]])
    key_mask = np.array([[False, True, True, True], [True, True, False, True]])
    layer = _layer()
    _, weights = _call(layer, [query, value, value], mask=[None, value_mask, key_mask])
    _, ref = np_bahdanau(layer, query, value, value_mask=value_mask & key_mask)
    np.testing.assert_allclose(weights, ref, atol=1e-5)


def test_garbage_at_masked_positions_changes_nothing():
    # The helper's masking check can't express a two-mask layer, so it lives here.
    query, value, _ = _data()
    query_mask = np.array([[True, False, True], [True, True, True]])
    value_mask = np.array([[True, False, True, False], [True, True, True, False]])
    layer = _layer()
    clean = _call(layer, [query, value], mask=[query_mask, value_mask])
    rng = np.random.default_rng(1)
    noisy_q = np.where(query_mask[..., None], query, 1e3 * rng.normal(size=query.shape))
    noisy_v = np.where(value_mask[..., None], value, 1e3 * rng.normal(size=value.shape))
    noisy = _call(
        layer,
        [noisy_q.astype("float32"), noisy_v.astype("float32")],
        mask=[query_mask, value_mask],
    )
    for a, b in zip(clean, noisy, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    query, value, _ = _data()
    value_mask = np.array([[True, False, True, True], [False, False, False, False]])
    layer = _layer()
    query_t, value_t = tf.constant(query), tf.constant(value)
    with tf.GradientTape() as tape:
        tape.watch([query_t, value_t])
        context, weights = layer(
            [query_t, value_t], mask=[None, value_mask], return_attention_scores=True
        )
        loss = tf.reduce_sum(context**2) + tf.reduce_sum(weights)
    grads = tape.gradient(loss, [query_t, value_t, *layer.trainable_weights])
    context, weights = context.numpy(), weights.numpy()
    assert np.all(context[1] == 0) and np.all(weights[1] == 0)
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(weights))
    for grad in grads:
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
    ref_context, _ = np_bahdanau(layer, query, value, value_mask=value_mask)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


def test_two_dimensional_query():
    query, value, _ = _data()
    step = query[:, 0]
    value_mask = np.array([[True, True, False, False], [True, True, True, True]])
    query_mask = np.array([True, False])
    layer = _layer()
    context, weights = _call(layer, [step, value], mask=[query_mask, value_mask])
    assert context.shape == (B, DV) and weights.shape == (B, TV)
    ref_context, ref_weights = np_bahdanau(
        layer, step, value, query_mask=query_mask, value_mask=value_mask
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # Same numbers as the 3-D path with Tq = 1.
    context3, _ = _call(layer, [step[:, None], value], mask=[None, value_mask])
    np.testing.assert_allclose(context3[0, 0], context[0], atol=1e-6)
    assert layer.compute_mask([step, value], [query_mask, value_mask]) is None


def test_return_attention_scores_and_mask_in_functional_model():
    query, value, _ = _data()
    q_in, v_in = keras.Input((None, DQ)), keras.Input((None, DV))
    masked_q = keras.layers.Masking(0.0)(q_in)
    masked_v = keras.layers.Masking(0.0)(v_in)
    layer = _layer()
    context, weights = layer([masked_q, masked_v], return_attention_scores=True)
    assert tuple(context.shape) == (None, None, DV)
    assert tuple(weights.shape) == (None, None, None)
    model = keras.Model([q_in, v_in], [context, weights])
    query[1, 2] = 0.0  # masked query step
    value[0, 3] = 0.0  # masked value step
    got_context, got_weights = (np.asarray(t) for t in model([query, value]))
    ref_context, ref_weights = np_bahdanau(
        layer,
        query,
        value,
        query_mask=np.any(query != 0, -1),
        value_mask=np.any(value != 0, -1),
    )
    np.testing.assert_allclose(got_weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(got_context, ref_context, atol=1e-5)
    # The query mask travels on.
    out_mask = layer.compute_mask([query, value], [query != 0, None])
    assert out_mask is not None
    assert layer.compute_mask([query, value], None) is None
    assert layer.compute_output_shape([(B, TQ, DQ), (B, TV, DV)]) == (B, TQ, DV)


def test_dropout_only_in_training():
    query, value, _ = _data()
    layer = _layer(dropout=0.5, seed=3)
    inference, _ = _call(layer, [query, value])
    default, _ = _call(layer, [query, value], training=False)
    np.testing.assert_array_equal(inference, default)
    np.testing.assert_allclose(
        inference, np_bahdanau(layer, query, value)[0], atol=1e-5
    )
    _, dropped = _call(layer, [query, value], training=True)
    _, clean = _call(layer, [query, value], training=False)
    assert np.any(dropped == 0)
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], clean[kept] / 0.5, rtol=1e-5)


def test_layer_checks(tmp_path):
    query, value, _ = _data()
    # Masking is checked above: the helper's single (batch, time) mask can't
    # describe separate query and value masks.
    run_layer_checks(lambda: _layer(dropout=0.1), [query, value], tmp_path)


def test_masked_softmax_helper():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, 3, 4)).astype("float32")
    all_true = np.ones(scores.shape, bool)
    np.testing.assert_allclose(
        np.asarray(masked_softmax(scores, all_true)),
        np.asarray(keras.ops.softmax(scores, axis=-1)),
        atol=1e-6,
    )
    mask = rng.random(scores.shape) > 0.4
    mask[0, 1] = False
    scores[~mask] = 1e30  # would overflow a naive softmax
    got = np.asarray(masked_softmax(scores, mask))
    np.testing.assert_allclose(got, _np_softmax(scores, mask), atol=1e-6)
    assert np.all(got[~mask] == 0) and np.all(got[0, 1] == 0)


@pytest.mark.parametrize("units", [0, -2, 2.5, True, "3", None])
def test_bad_units(units):
    with pytest.raises(ValueError, match=f"units={units!r}"):
        BahdanauAttention(units)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5, "0.1", None])
def test_bad_dropout(dropout):
    with pytest.raises(ValueError, match="dropout"):
        BahdanauAttention(3, dropout=dropout)


def test_bad_inputs():
    query, value, _ = _data()
    with pytest.raises(ValueError, match="query, value"):
        BahdanauAttention(3)(value)
    with pytest.raises(ValueError, match="query, value"):
        BahdanauAttention(3)([query])
    with pytest.raises(ValueError, match="query of rank 2 or 3"):
        BahdanauAttention(3)([query[..., None], value])
    with pytest.raises(ValueError, match="value of rank 3"):
        BahdanauAttention(3)([query, value[:, 0]])
    with pytest.raises(ValueError, match="floating-point `value`"):
        BahdanauAttention(3)([query, value.astype("int32")])
    with pytest.raises(ValueError, match="floating-point `query`"):
        BahdanauAttention(3)(
            [keras.Input((TQ, DQ), dtype="int32"), keras.Input((TV, DV))]
        )
    with pytest.raises(ValueError, match="mask"):
        BahdanauAttention(3)([query, value], mask=np.ones((B, TV), bool))
