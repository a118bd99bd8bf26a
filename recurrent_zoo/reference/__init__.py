"""NumPy references of the recurrent cells: forward pass and BPTT.

Written straight from the equations in the layers' docstrings, with no Keras
or TensorFlow, so the tests can hold the layers (and their hand-written
TensorFlow gradient) against an independent derivation. The min-RNNs have a
forward pass only: their tests differentiate it by finite differences.
Readable first: plain loops over time, float64 throughout.
"""

from recurrent_zoo.reference.layer_norm_gru import (
    layer_norm_gru_bptt,
    layer_norm_gru_forward,
)
from recurrent_zoo.reference.layer_norm_lstm import (
    layer_norm_lstm_bptt,
    layer_norm_lstm_forward,
)
from recurrent_zoo.reference.min_rnn import min_gru_forward, min_lstm_forward
from recurrent_zoo.reference.simple_rnn import simple_rnn_bptt, simple_rnn_forward

__all__ = [
    "layer_norm_gru_bptt",
    "layer_norm_gru_forward",
    "layer_norm_lstm_bptt",
    "layer_norm_lstm_forward",
    "min_gru_forward",
    "min_lstm_forward",
    "simple_rnn_bptt",
    "simple_rnn_forward",
]
