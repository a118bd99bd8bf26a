"""recurrent_zoo: recurrent layers and text classifiers for Keras 3."""

__version__ = "0.1.0"
