"""What the MinGRU and MinLSTM tests share: the layers with their cells and
NumPy references, biases that show, and Keras's loop outputs from states."""

import keras
import numpy as np

from recurrent_zoo.layers import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell
from recurrent_zoo.reference import min_gru_forward, min_lstm_forward

# Biases of order 1, so a dropped or misplaced one shows.
BIAS = {"bias_initializer": keras.initializers.RandomNormal(0.0, 1.0, seed=3)}
# name -> (layer, cell, NumPy reference)
KINDS = {
    "min_gru": (MinGRU, MinGRUCell, min_gru_forward),
    "min_lstm": (MinLSTM, MinLSTMCell, min_lstm_forward),
}


def keras_outputs(states, mask):
    """Keras's loop outputs from the states: zeros before a row's first real
    step, the previous output (= the carried state) at later masked ones."""
    if mask is None:
        return states
    started = np.cumsum(mask, axis=1) > 0
    return np.where(started[..., None], states, 0.0)
