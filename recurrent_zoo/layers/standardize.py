"""Text standardization inside models: the same for fit, predict and serving."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

__all__ = ["standardize_text"]

# Keras's default `lower_and_strip_punctuation` set, deleted as Keras does.
_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'
# Unicode separators and control/format characters (NEL U+0085, NBSP, zero
# width spaces, tabs...). The whitespace split alone keeps them inside
# tokens, and a vocabulary word holding U+0085 breaks Keras's one-word-per-
# line vocabulary file when the model is saved.
_SEPARATORS = r"[\s\p{Z}\p{Cc}\p{Cf}]+"
_LINE_BREAK = r"(?i)<br\s*/?\s*>"


@keras.saving.register_keras_serializable(package="recurrent_zoo")
def standardize_text(text: Any) -> Any:
    """Lower-cases and cleans a string tensor for `TextVectorization`.

        1. invalid UTF-8 bytes become U+FFFD (never an error in serving)
        2. `<br />` markup becomes a space (IMDB reviews are full of it)
        3. Unicode lower case
        4. Keras's punctuation set is deleted
        5. runs of any Unicode whitespace, separator or control character
           become one space

    Example:

    >>> standardize_text(tf.constant(["Great<br />FILM!\\x85Really"])).numpy()
    array([b'great film really'], dtype=object)
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    text = tf.strings.regex_replace(text, _LINE_BREAK, " ")
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, _PUNCTUATION, "")
    return tf.strings.strip(tf.strings.regex_replace(text, _SEPARATORS, " "))
