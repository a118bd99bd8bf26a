"""Real text-classification corpora, read from their original distributions."""

from recurrent_zoo.data.imdb import TextClassificationData, load_imdb

__all__ = ["TextClassificationData", "load_imdb"]
