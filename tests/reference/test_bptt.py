"""The NumPy references checked against central finite differences.

The layers' tests trust these references as their oracle, so the references
themselves are held to the plainest possible check: perturb each input by
+-eps in float64 and compare the slope with the BPTT gradient.
"""

import numpy as np
import pytest

from recurrent_zoo.reference import (
    layer_norm_lstm_bptt,
    layer_norm_lstm_forward,
    simple_rnn_bptt,
    simple_rnn_forward,
)

RNG = np.random.default_rng(3)
B, T, D, H = 2, 4, 3, 2


def _numeric_grad(loss, array, eps=1e-6):
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = loss()
        array[index] = original - eps
        minus = loss()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("activation", ["tanh", "linear"])
def test_simple_rnn_bptt(activation):
    x = RNG.normal(size=(B, T, D))
    kernel, recurrent, bias = (
        RNG.normal(size=(D, H)),
        RNG.normal(size=(H, H)),
        RNG.normal(size=H),
    )
    h0 = RNG.normal(size=(B, H))
    d_hs = RNG.normal(size=(B, T, H))

    def loss():
        hs = simple_rnn_forward(x, kernel, recurrent, bias, h0, activation)
        return float(np.sum(hs * d_hs))

    grads = simple_rnn_bptt(x, kernel, recurrent, bias, d_hs, h0, activation)
    for name, array in [("x", x), ("kernel", kernel), ("recurrent_kernel", recurrent),
                        ("bias", bias), ("h0", h0)]:  # fmt: skip
        np.testing.assert_allclose(grads[name], _numeric_grad(loss, array), atol=1e-6)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_layer_norm_lstm_bptt(layer_norm):
    x = RNG.normal(size=(B, T, D))
    params = {
        "kernel": RNG.normal(size=(D, 4 * H)),
        "recurrent_kernel": RNG.normal(size=(H, 4 * H)),
        "bias": RNG.normal(size=4 * H),
    }
    if layer_norm:
        params.update(
            input_gamma=RNG.normal(size=4 * H),
            recurrent_gamma=RNG.normal(size=4 * H),
            cell_gamma=RNG.normal(size=H),
            cell_beta=RNG.normal(size=H),
        )
    h0, c0 = RNG.normal(size=(B, H)), RNG.normal(size=(B, H))
    d_hs = RNG.normal(size=(B, T, H))

    def loss():
        hs, _ = layer_norm_lstm_forward(x, params, layer_norm, h0=h0, c0=c0)
        return float(np.sum(hs * d_hs))

    grads = layer_norm_lstm_bptt(x, params, d_hs, layer_norm, h0=h0, c0=c0)
    for name, array in [("x", x), ("h0", h0), ("c0", c0), *params.items()]:
        np.testing.assert_allclose(
            grads[name], _numeric_grad(loss, array), atol=1e-6, err_msg=name
        )


def test_masked_forward_skips_steps():
    """A masked step leaves h and c exactly as they were."""
    x = RNG.normal(size=(1, T, D))
    params = {"kernel": RNG.normal(size=(D, 4 * H)),
              "recurrent_kernel": RNG.normal(size=(H, 4 * H))}  # fmt: skip
    mask = np.array([[True, False, True, False]])
    hs, cs = layer_norm_lstm_forward(x, params, layer_norm=False, mask=mask)
    np.testing.assert_array_equal(hs[:, 1], hs[:, 0])
    np.testing.assert_array_equal(cs[:, 3], cs[:, 2])
    alone, _ = layer_norm_lstm_forward(x[:, mask[0]], params, layer_norm=False)
    np.testing.assert_allclose(hs[:, -1], alone[:, -1])
