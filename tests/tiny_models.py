"""Tiny text-classifier settings shared by the model and training tests."""

# `TextClassifier` arguments small enough for a test to build in seconds.
TINY = dict(
    vocabulary_size=300,
    sequence_length=30,
    embedding_dim=8,
    units=(4,),
    attention_units=4,
)
# A few texts to adapt a vocabulary on; the empty one must not break it.
TEXTS = [
    "a good film with a great cast",
    "a bad film, terrible and dull",
    "great acting",
    "dull dull dull",
    "",
]
# `train(..., overrides=...)` for a wide & deep topic run on a few posts.
TINY_TOPIC = dict(
    units=(2,),
    embedding_dim=4,
    attention_units=2,
    vocabulary_size=300,
    sequence_length=20,
    bag_of_words=True,
)
