"""Text-classification corpora as `TextClassificationData`.

Named corpora are read from their original distributions (`load_imdb`,
`load_newsgroups`); a user's own data from one folder per class
(`load_text_folder`) or a CSV / JSON-lines table (`load_table`).
`load_corpus` picks the loader by name for commands. Plain text without
labels, for language models, is read as `TextDocuments`
(`load_text_documents`); a time series, for forecasters, as a `TimeSeries`
(`load_series`).
"""

from recurrent_zoo.data.imdb import load_imdb, load_imdb_unlabeled
from recurrent_zoo.data.newsgroups import load_newsgroups
from recurrent_zoo.data.plain_text import TextDocuments, load_text_documents
from recurrent_zoo.data.registry import CORPORA, load_corpus, load_unlabeled
from recurrent_zoo.data.series import TimeSeries, load_series
from recurrent_zoo.data.text_data import TextClassificationData
from recurrent_zoo.data.text_files import load_table, load_text_folder

__all__ = [
    "CORPORA",
    "TextClassificationData",
    "TextDocuments",
    "TimeSeries",
    "load_corpus",
    "load_imdb",
    "load_imdb_unlabeled",
    "load_newsgroups",
    "load_series",
    "load_table",
    "load_text_documents",
    "load_text_folder",
    "load_unlabeled",
]
