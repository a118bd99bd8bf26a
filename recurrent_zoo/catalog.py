"""The names the package offers, in one place that imports nothing heavy.

The command line reads its choices here before TensorFlow is imported (so
`--help` is instant), and the modules that implement each name read the
same tuples, so a command can never offer what the library lacks, nor the
other way round. Recurrent cells have their own registry, `cells.py`.
"""

from __future__ import annotations

__all__ = ["CORPORA", "REMOVABLE", "TASKS", "TUNERS"]

# Prebuilt models (`recurrent_zoo.models.ARCHITECTURES`), each with the
# corpus it is meant for.
TASKS: dict[str, str] = {"sentiment": "imdb", "topic": "20newsgroups"}

# What `recurrent_zoo.data.load_corpus` reads: two named corpora, and a
# user's own texts as one folder per class or as a table.
CORPORA: tuple[str, ...] = ("imdb", "20newsgroups", "folder", "table")

# Parts of a 20 Newsgroups post that can be stripped (scikit-learn's names).
REMOVABLE: tuple[str, ...] = ("headers", "footers", "quotes")

# keras-tuner search algorithms (`recurrent_zoo.tuning.make_tuner`).
TUNERS: tuple[str, ...] = ("hyperband", "bayesian", "random")
