"""Keras layers: SimpleRNN, LayerNormLSTM, Bidirectional, Bahdanau attention."""

from recurrent_zoo.layers.attention_pooling import AttentionPooling
from recurrent_zoo.layers.bahdanau_attention import BahdanauAttention
from recurrent_zoo.layers.bidirectional import Bidirectional
from recurrent_zoo.layers.layer_norm_lstm import LayerNormLSTM, LayerNormLSTMCell
from recurrent_zoo.layers.simple_rnn import SimpleRNN, SimpleRNNCell

__all__ = [
    "AttentionPooling",
    "BahdanauAttention",
    "Bidirectional",
    "LayerNormLSTM",
    "LayerNormLSTMCell",
    "SimpleRNN",
    "SimpleRNNCell",
]
