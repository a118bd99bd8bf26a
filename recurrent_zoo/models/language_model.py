"""Language-model pretraining of a `TextClassifier`'s encoder (Dai & Le, 2015)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from recurrent_zoo.data.batching import counted_bucketed_dataset
from recurrent_zoo.layers.checks import check_positive_int
from recurrent_zoo.layers.reversal import reversal_indices, reverse_within_spans
from recurrent_zoo.models.text_classifier import TextClassifier

__all__ = ["EncoderLanguageModel", "pretrain_encoder"]


def _mean(losses):
    # A batch of one-word texts has no pairs: its loss is 0, not NaN.
    count = tf.cast(tf.size(losses), losses.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(losses), count)


class EncoderLanguageModel(keras.Model):
    """Next-word and previous-word language models over a classifier's encoder.

    Shares, not copies, the classifier's vectorizer, word embedding and
    first `Bidirectional` layer, so fitting this model pretrains them in
    place (Dai & Le's SA-LSTM, run in both directions as in ELMo):

        x_t      = Embedding(w_t)
        f_t      = forward_lstm(x_1..x_t)          (the classifier's own)
        b_t      = backward_lstm(x_T..x_t)         (the classifier's own)
        p(w_{t+1} | w_1..w_t) = softmax(V f_t + c)
        p(w_{t-1} | w_t..w_T) = softmax(V b_t + c)

    V and c are this model's own (one softmax for both directions, thrown
    away after pretraining). Training minimizes the mean of the two
    sampled-softmax losses (Jean et al., 2015) over every real next/previous
    word; evaluation (`evaluate`, validation) reports the exact full-softmax
    cross-entropy in nats per word, whose exp is the perplexity.

    What is not pretrained: the hashed bigram embedding (the bigram starting
    at w_t contains w_{t+1}, the very word to predict), deeper recurrent
    layers (their input mixes both directions, so each would see the word
    it predicts), the attention pooling and the head.

    Args:
        classifier: an adapted `TextClassifier`, of any cell of
            `recurrent_zoo.cells.CELLS`.
        num_sampled: negative words drawn per batch for the sampled softmax
            (log-uniform, which suits a frequency-ordered vocabulary). With
            a vocabulary this small or smaller, training uses the exact loss.

    Call arguments:
        texts: string tensor `(batch,)`.
        training: whether dropout (if any in the recurrent layers) is active.

    `call` returns the exact loss of the batch, a scalar.

    Masking: padding ids (0) are never inputs nor targets; the backward
    model reads each text from its own last word.

    Example:

    >>> model = TextClassifier(["neg", "pos"], vocabulary_size=50,
    ...                        embedding_dim=8, units=(4,), attention_units=4)
    >>> model.adapt(["a good film", "a bad film"])
    >>> lm = EncoderLanguageModel(model, num_sampled=4)
    >>> lm.compile(optimizer="adam")
    >>> float(lm(np.array(["a good film"], dtype=object))) > 0
    True

    Reference:
        A. M. Dai and Q. V. Le. "Semi-supervised Sequence Learning."
        NeurIPS 2015. S. Jean et al. "On Using Very Large Target
        Vocabulary for Neural Machine Translation." ACL 2015 (the sampled
        softmax).
    """

    def __init__(
        self, classifier: TextClassifier, num_sampled: int = 512, **kwargs: Any
    ) -> None:
        if not isinstance(classifier, TextClassifier):
            raise ValueError(
                "classifier must be a TextClassifier. "
                f"Received: classifier={type(classifier).__name__}"
            )
        super().__init__(**kwargs)
        self.num_sampled = check_positive_int("num_sampled", num_sampled)
        self.vocabulary_size = classifier.vocabulary_size
        self.vectorizer = classifier.vectorizer
        self.trim_padding = classifier.get_layer("trim_padding")
        self.embedding = classifier.get_layer("embedding")
        encoder = classifier.get_layer("bidirectional_0")
        self.forward_rnn = encoder.forward_layer
        self.backward_rnn = encoder.backward_layer
        units = int(self.forward_rnn.units)
        self.softmax_kernel = self.add_weight(
            shape=(self.vocabulary_size, units),
            initializer="glorot_uniform",
            name="softmax_kernel",
        )
        self.softmax_bias = self.add_weight(
            shape=(self.vocabulary_size,), initializer="zeros", name="softmax_bias"
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list:
        return [self.loss_tracker]

    def _hidden_and_targets(self, rnn, ids, mask, training):
        hidden = rnn(self.embedding(ids), mask=mask, training=training)
        # State after w_t predicts w_{t+1}; padding targets are dropped.
        targets = ids[:, 1:]
        real = targets != 0
        return tf.boolean_mask(hidden[:, :-1], real), tf.boolean_mask(targets, real)

    def _pairs(self, texts, training):
        ids = self.trim_padding(self.vectorizer(texts))
        mask = ids != 0
        indices = reversal_indices(mask)
        hidden_f, targets_f = self._hidden_and_targets(
            self.forward_rnn, ids, mask, training
        )
        # Reversed within each text, padding stays at the end: the backward
        # layer reads w_T..w_1 and predicts the previous word.
        hidden_b, targets_b = self._hidden_and_targets(
            self.backward_rnn,
            reverse_within_spans(ids, indices),
            reverse_within_spans(mask, indices),
            training,
        )
        hidden = tf.concat([hidden_f, hidden_b], axis=0)
        targets = tf.cast(tf.concat([targets_f, targets_b], axis=0), "int64")
        return hidden, targets

    def _exact_loss(self, hidden, targets):
        logits = tf.matmul(hidden, self.softmax_kernel, transpose_b=True)
        logits = logits + self.softmax_bias
        return _mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))

    def call(self, texts: Any, training: bool | None = None) -> Any:
        hidden, targets = self._pairs(texts, training)
        return self._exact_loss(hidden, targets)

    def train_step(self, data: Any) -> dict:
        texts = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            hidden, targets = self._pairs(texts, True)
            if self.num_sampled >= self.vocabulary_size - 1:
                # Sampling would draw (nearly) every word: the exact loss is
                # no dearer, and the sampler refuses ranges this small.
                loss = self._exact_loss(hidden, targets)
            else:
                loss = self._sampled_loss(hidden, targets)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def _sampled_loss(self, hidden, targets):
        losses = tf.nn.sampled_softmax_loss(
            weights=self.softmax_kernel,
            biases=self.softmax_bias,
            labels=targets[:, None],
            inputs=hidden,
            num_sampled=self.num_sampled,
            num_classes=self.vocabulary_size,
        )
        return _mean(losses)

    def test_step(self, data: Any) -> dict:
        texts = data[0] if isinstance(data, tuple) else data
        hidden, targets = self._pairs(texts, False)
        self.loss_tracker.update_state(
            self._exact_loss(hidden, targets), sample_weight=tf.size(targets)
        )
        return {"loss": self.loss_tracker.result()}

    def get_config(self) -> dict:
        # Built around a live classifier, which a config cannot carry: this
        # model is a training device, saved through the classifier it trains.
        raise NotImplementedError(
            "EncoderLanguageModel is not serializable; save the classifier."
        )


def pretrain_encoder(
    classifier: TextClassifier,
    texts: Sequence[str],
    *,
    epochs: int = 1,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    num_sampled: int = 512,
    validation_texts: Sequence[str] | None = None,
    seed: int | None = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """Pretrains a classifier's embedding and first recurrent layer as LMs.

    Fits an `EncoderLanguageModel` over `texts` (unlabeled: e.g. IMDB's
    `train/unsup` reviews plus the training texts, never validation or test
    texts) with Adam, its learning rate decayed along a cosine to 0. The
    classifier's weights change in place; fit it afterwards as usual.

    Args:
        classifier: an adapted `TextClassifier`.
        texts: the pretraining texts.
        epochs: passes over `texts`.
        batch_size: texts per step (grouped by length).
        learning_rate: Adam's peak learning rate.
        num_sampled: negative words per batch in the sampled softmax.
        validation_texts: optional texts whose exact loss is reported
            each epoch as `val_loss`.
        seed: shuffling seed.
        callbacks: extra Keras callbacks.
        verbose: as `keras.Model.fit`.

    Returns:
        The `History` of the fit: "loss" (sampled, per word) and, with
        validation texts, "val_loss" (exact, per word).

    Raises:
        ValueError: on an empty `texts`, a non-positive `epochs` or
            `batch_size`, or a classifier whose vocabulary is not adapted.
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    if len(texts) == 0:
        raise ValueError("texts must hold at least one text to pretrain on")
    if classifier.vectorizer.vocabulary_size() <= 2:
        raise ValueError("adapt the classifier's vocabulary before pretraining")
    length = classifier.sequence_length
    dataset, steps = counted_bucketed_dataset(
        texts, None, batch_size, seed=seed, max_length=length
    )
    validation = None
    if validation_texts is not None and len(validation_texts):
        # Small batches: the exact loss holds a (words, vocabulary) matrix
        # of logits, gigabytes for 64 long reviews and 20,000 words.
        validation, _ = counted_bucketed_dataset(
            validation_texts, None, 8, shuffle=False, max_length=length
        )
    model = EncoderLanguageModel(classifier, num_sampled=num_sampled)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=steps * epochs
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0))
    return model.fit(
        dataset,
        epochs=epochs,
        validation_data=validation,
        shuffle=False,  # the dataset reshuffles itself every epoch
        callbacks=list(callbacks),
        verbose=verbose,
    )
