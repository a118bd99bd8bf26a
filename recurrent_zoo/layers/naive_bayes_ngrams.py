"""NBSVM inside a model: a linear classifier over the word n-grams of raw text."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from recurrent_zoo.layers.checks import check_positive_int
from recurrent_zoo.layers.standardize import standardize_text

__all__ = ["NaiveBayesNgrams"]

# Inverse regularization strengths tried by `adapt` on its held-out tenth
# (IMDB's validation accuracy varied by 0.3 points over this range).
C_GRID = (0.1, 0.3, 1.0)
_HELD_OUT = 0.1
# Below this many texts per class a held-out tenth says little: `adapt`
# then fits the middle of the grid on every text.
_MIN_PER_CLASS_FOR_CHOICE = 50


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class NaiveBayesNgrams(keras.layers.Layer):
    """Logits of NBSVM (Wang & Manning 2012) over the word n-grams of raw text.

        tokens  = the words of standardize_text(text)     (the model's own)
        grams   = tokens and adjacent token pairs         (unigrams, bigrams)
        x_f     = 1 if some gram hashes to bucket f, else 0    (binary)
        r_c     = log((alpha + sum_{y=c} x) / |.|_1)
                  - log((alpha + sum_{y!=c} x) / |.|_1)   (naive-Bayes ratio)
        r_cf    = 0 where bucket f is in fewer than min_count training texts
        logit_c = sum_f x_f r_cf w_cf + b_c

    `w_c`, `b_c` are an L2-regularized logistic regression on the scaled
    features `r_c * x` (NBSVM's recipe with the logistic loss), one per class
    against the rest, or a single one for two classes. They are fitted in
    closed form by `adapt(texts, labels)` with scikit-learn's liblinear, its
    `C` chosen from `C_GRID` on a seeded tenth of the texts held out, then
    refitted on all of them; the layer stores `r_c * w_c` in `kernel`. Both
    weights are non-trainable: a model that holds this layer trains its
    other parts by gradient, and `adapt` is this part's training.

    The n-grams of the whole text count, not of the first `sequence_length`
    words a recurrent encoder reads, and the buckets are hashed
    (`tf.strings.to_hash_bucket_fast`), so there is no vocabulary to cut: a
    rare but telling phrase ("waste of", "not bad") reaches the output.
    Beside a recurrent classifier (`TextClassifier(naive_bayes_buckets=...)`)
    it is the IMDB preset's wide part; what each part scores alone and
    together is in the README's Accuracy section.

    Args:
        buckets: number of hash buckets (n-gram features).
        classes: number of classes; two give one logit (sigmoid), more give
            one logit per class (softmax over one-vs-rest scores).
        alpha: the naive-Bayes smoothing count.
        min_count: buckets present in fewer training texts than this get no
            weight (as scikit-learn's `min_df`; the TF-IDF baseline of
            `benchmarks/accuracy.py` uses 2 too): a gram seen once says more
            about its review than about its class, and the zeros keep a
            saved model small.

    Call arguments:
        inputs: string tensor `(batch,)` (or `(batch, 1)`) of raw texts.

    Example:

    >>> layer = NaiveBayesNgrams(buckets=1024)
    >>> layer.adapt(["a great film", "a dull film"] * 10, [1, 0] * 10)
    >>> bool(layer(tf.constant(["great"]))[0, 0] > 0)
    True

    Reference:
        S. Wang and C. Manning. "Baselines and Bigrams: Simple, Good
        Sentiment and Topic Classification." ACL 2012.
    """

    def __init__(
        self,
        buckets: int = 2**20,
        classes: int = 2,
        alpha: float = 1.0,
        min_count: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.buckets = check_positive_int("buckets", buckets)
        self.classes = check_positive_int("classes", classes)
        if classes < 2:
            raise ValueError(f"classes must be at least 2. Received: classes={classes}")
        if not float(alpha) > 0.0:  # also rejects NaN
            raise ValueError(f"alpha must be positive. Received: alpha={alpha!r}")
        self.alpha = float(alpha)
        self.min_count = check_positive_int("min_count", min_count)
        self.outputs = 1 if classes == 2 else classes
        self.chosen_c: float | None = None

    def build(self, input_shape: Any = None) -> None:
        self.kernel = self.add_weight(
            shape=(self.buckets, self.outputs),
            initializer="zeros",
            trainable=False,
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.outputs,), initializer="zeros", trainable=False, name="bias"
        )
        self.built = True

    def grams(self, texts: Any) -> tuple[tf.Tensor, tf.Tensor]:
        """The `(text index, bucket)` pairs present, each pair once."""
        # (batch,) or (batch, 1), as `TextVectorization` takes.
        texts = tf.reshape(tf.convert_to_tensor(texts, dtype=tf.string), [-1])
        tokens = tf.strings.split(standardize_text(texts))
        grams = tf.strings.ngrams(tokens, (1, 2), separator=" ")
        hashed = tf.strings.to_hash_bucket_fast(grams, self.buckets)
        keys = hashed.value_rowids() * self.buckets + hashed.flat_values
        keys, _ = tf.unique(keys)
        return keys // self.buckets, keys % self.buckets

    def call(self, inputs: Any) -> Any:
        rows, columns = self.grams(inputs)
        # Gathered, then cast: only the present buckets, not all of them.
        logits = tf.math.unsorted_segment_sum(
            tf.cast(tf.gather(self.kernel, columns), self.compute_dtype),
            rows,
            num_segments=tf.shape(inputs, out_type=tf.int64)[0],
        )
        return logits + tf.cast(self.bias, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.outputs)

    def features(self, texts: Any, batch_size: int = 1024) -> Any:
        """The binary `(texts, buckets)` scipy CSR matrix `x` of the texts."""
        import scipy.sparse

        texts = np.asarray(list(texts), dtype=object)
        rows, columns = [], []
        for start in range(0, len(texts), batch_size):
            r, c = self.grams(texts[start : start + batch_size])
            rows.append(r.numpy() + start)
            columns.append(c.numpy())
        rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        columns = np.concatenate(columns) if columns else np.zeros(0, np.int64)
        return scipy.sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, columns)),
            shape=(len(texts), self.buckets),
        )

    def adapt(self, texts: Any, labels: Any, seed: int = 0) -> None:
        """Fits the classifier to labelled training texts (never test data).

        Args:
            texts: strings.
            labels: class ids in `[0, classes)`, one per text.
            seed: seed of the held-out tenth `C` is chosen on.
        """
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        texts = list(texts)
        if len(texts) != len(labels):
            raise ValueError(
                f"adapt got {len(texts)} texts but {len(labels)} labels; "
                "give one label per text"
            )
        if labels.size == 0 or labels.min() < 0 or labels.max() >= self.classes:
            raise ValueError(
                f"labels must be class ids in [0, {self.classes}), got "
                f"{labels.min() if labels.size else 'none'}.."
                f"{labels.max() if labels.size else ''}"
            )
        if not self.built:
            self.build()
        x = self.features(texts)
        self.chosen_c = self._choose_c(x, labels, seed)
        kernel, bias = self._fit(x, labels, self.chosen_c)
        self.kernel.assign(kernel)
        self.bias.assign(bias)

    def _choose_c(self, x: Any, labels: np.ndarray, seed: int) -> float:
        counts = np.bincount(labels, minlength=self.classes)
        if counts.min() < _MIN_PER_CLASS_FOR_CHOICE:
            return C_GRID[len(C_GRID) // 2]
        order = np.random.default_rng(seed).permutation(len(labels))
        held = order[: int(round(_HELD_OUT * len(labels)))]
        kept = np.setdiff1d(order, held)
        scores = []
        for c in C_GRID:
            kernel, bias = self._fit(x[kept], labels[kept], c)
            logits = x[held] @ kernel + bias
            guess = (logits[:, 0] > 0) if self.outputs == 1 else logits.argmax(1)
            scores.append(np.mean(guess == labels[held]))
        return C_GRID[int(np.argmax(scores))]  # the smallest C among ties

    def _fit(self, x: Any, labels: np.ndarray, c: float) -> tuple:
        """`(kernel, bias)` of the NB-scaled logistic regressions at `C = c`."""
        import scipy.sparse
        from sklearn.linear_model import LogisticRegression

        targets = (
            [labels == 1]
            if self.outputs == 1
            else [labels == k for k in range(self.classes)]
        )
        kernel = np.zeros((self.buckets, self.outputs), np.float32)
        bias = np.zeros(self.outputs, np.float32)
        # x is binary: its column sums are document frequencies.
        counts = np.asarray(x.sum(axis=0)).ravel()
        rare = counts < self.min_count
        for k, positive in enumerate(targets):
            if positive.all() or not positive.any():
                # One class only: no regression to fit, the prior alone.
                bias[k] = 30.0 if positive.all() else -30.0
                continue
            in_class = np.asarray(x[positive].sum(axis=0)).ravel()
            p = self.alpha + in_class
            q = self.alpha + (counts - in_class)  # the rest, without a copy of x
            ratio = np.log(p / p.sum()) - np.log(q / q.sum())
            ratio[rare] = 0.0  # a zero column: liblinear gives it no weight
            regression = LogisticRegression(
                C=c, solver="liblinear", dual=True, max_iter=2000, random_state=0
            ).fit(x @ scipy.sparse.diags(ratio), positive)
            kernel[:, k] = ratio * regression.coef_[0]
            bias[k] = regression.intercept_[0]
        return kernel, bias

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "buckets": self.buckets,
            "classes": self.classes,
            "alpha": self.alpha,
            "min_count": self.min_count,
        }
