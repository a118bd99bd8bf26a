"""Classification metrics in NumPy: confusion matrix, accuracy, macro-F1.

They match scikit-learn's (`confusion_matrix`, `accuracy_score`,
`precision_recall_fscore_support(labels=range(num_classes),
zero_division=0)`) without needing it at run time. Labels are class
indices `0 .. num_classes - 1`.

Every class counts in the macro average, including a class that appears
neither in the truth nor in the predictions: its precision, recall and F1
are 0 (scikit-learn's `zero_division=0`), so a test slice that lacks a class
scores a lower macro-F1 than the same predictions over the classes present.
That is deliberate: the model was asked to tell all its classes apart, and
a macro-F1 over "whatever classes this slice happened to hold" would not
compare across slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "macro_f1",
    "precision_recall_f1",
]


def _labels(name: str, values: Any, num_classes: int | None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        # np.asarray([]) is float64; an empty list is still valid labels.
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class ids, got {array.dtype}")
    if num_classes is not None and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values from "
            f"{array.min()} to {array.max()}"
        )
    return array.astype(np.int64)


def _pair(y_true: Any, y_pred: Any, num_classes: int | None) -> tuple:
    true = _labels("y_true", y_true, num_classes)
    pred = _labels("y_pred", y_pred, num_classes)
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true and y_pred differ in length: {true.size} vs {pred.size}"
        )
    return true, pred


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: true class ids, shape `(n,)`.
        y_pred: predicted class ids, shape `(n,)`.
        num_classes: the number of classes (rows and columns).

    Returns:
        int64 array `(num_classes, num_classes)`: `matrix[i, j]` counts
        examples of class `i` predicted as `j`.

    Raises:
        ValueError: if `num_classes < 1`, the arrays are not one-dimensional
            integer arrays of the same length, or an id lies outside
            `[0, num_classes)`.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    true, pred = _pair(y_true, y_pred, num_classes)
    flat = np.bincount(true * num_classes + pred, minlength=num_classes**2)
    return flat.reshape(num_classes, num_classes)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """The share of examples whose predicted class is the true one.

    Args:
        y_true: true class ids, shape `(n,)`.
        y_pred: predicted class ids, shape `(n,)`.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: on mismatched or non-integer inputs, or no examples
            (an accuracy of nothing is undefined, not 0 or 1).
    """
    true, pred = _pair(y_true, y_pred, None)
    if true.size == 0:
        raise ValueError("accuracy of zero examples is undefined")
    return float(np.mean(true == pred))


def precision_recall_f1(
    matrix: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix.

    A ratio whose denominator is zero is 0: precision of a class never
    predicted, recall of a class never present, and F1 of a class that is
    neither (scikit-learn's `zero_division=0`).

    Args:
        matrix: square confusion matrix, rows true, columns predicted.

    Returns:
        `(precision, recall, f1)`, float64 arrays of length `num_classes`.

    Raises:
        ValueError: if `matrix` is not square.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square, got shape {matrix.shape}")
    tp = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    present = matrix.sum(axis=1)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    # 2tp / (2tp + fp + fn) rather than the harmonic mean of P and R: equal
    # where both exist, and 0 (not undefined) when P or R divided by zero.
    return ratio(tp, predicted), ratio(tp, present), ratio(2 * tp, predicted + present)


def macro_f1(y_true: Any, y_pred: Any, num_classes: int) -> float:
    """Unweighted mean of the per-class F1 over all `num_classes` classes.

    Classes absent from both `y_true` and `y_pred` count with F1 = 0 (see
    the module docstring); this equals scikit-learn's `f1_score(y_true,
    y_pred, average="macro", labels=range(num_classes), zero_division=0)`.

    Args:
        y_true: true class ids, shape `(n,)`.
        y_pred: predicted class ids, shape `(n,)`.
        num_classes: the number of classes.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: as `confusion_matrix`.
    """
    _, _, f1 = precision_recall_f1(confusion_matrix(y_true, y_pred, num_classes))
    return float(f1.mean())


def classification_report(
    y_true: Any, y_pred: Any, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores and the confusion matrix.

    Everything is plain Python (floats, ints, lists), ready for `json.dump`.

    Args:
        y_true: true class ids, shape `(n,)`, indexing `class_names`.
        y_pred: predicted class ids, shape `(n,)`.
        class_names: the names of classes `0 .. num_classes - 1`.

    Returns:
        `{"examples": n, "accuracy": float, "macro_f1": float,
        "class_names": [...], "per_class": {name: {"precision", "recall",
        "f1", "support"}}, "confusion_matrix": [[...], ...]}` with
        `confusion_matrix[i][j]` the count of class `i` predicted as `j`.

    Raises:
        ValueError: as `confusion_matrix` and `accuracy`, or if
            `class_names` holds duplicates.
    """
    names = [str(name) for name in class_names]
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be distinct, got {names}")
    matrix = confusion_matrix(y_true, y_pred, len(names))
    precision, recall, f1 = precision_recall_f1(matrix)
    support = matrix.sum(axis=1)
    return {
        "examples": int(matrix.sum()),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": float(f1.mean()),
        "class_names": names,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": matrix.tolist(),
    }
