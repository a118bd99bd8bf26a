"""Keras layers: SimpleRNN, LayerNormLSTM, LayerNormGRU, MinGRU, MinLSTM,
Bidirectional, Bahdanau attention, and the text classifier's helpers
(attention pooling, TF-IDF bag of words, NBSVM)."""

from recurrent_zoo.layers.attention_pooling import AttentionPooling
from recurrent_zoo.layers.bag_of_words import TfIdfBagOfWords
from recurrent_zoo.layers.bahdanau_attention import BahdanauAttention
from recurrent_zoo.layers.bidirectional import Bidirectional
from recurrent_zoo.layers.layer_norm_gru import LayerNormGRU
from recurrent_zoo.layers.layer_norm_gru_cell import LayerNormGRUCell
from recurrent_zoo.layers.layer_norm_lstm import LayerNormLSTM
from recurrent_zoo.layers.layer_norm_lstm_cell import LayerNormLSTMCell
from recurrent_zoo.layers.min_gru import MinGRU, MinGRUCell
from recurrent_zoo.layers.min_lstm import MinLSTM, MinLSTMCell
from recurrent_zoo.layers.naive_bayes_ngrams import NaiveBayesNgrams
from recurrent_zoo.layers.simple_rnn import SimpleRNN
from recurrent_zoo.layers.simple_rnn_cell import SimpleRNNCell

__all__ = [
    "AttentionPooling",
    "BahdanauAttention",
    "Bidirectional",
    "LayerNormGRU",
    "LayerNormGRUCell",
    "LayerNormLSTM",
    "LayerNormLSTMCell",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "NaiveBayesNgrams",
    "SimpleRNN",
    "SimpleRNNCell",
    "TfIdfBagOfWords",
]
