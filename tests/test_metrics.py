import json

import numpy as np
import pytest
from sklearn import metrics as sk

from recurrent_zoo.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    macro_f1,
    precision_recall_f1,
)


def _sklearn(y_true, y_pred, num_classes):
    labels = list(range(num_classes))
    p, r, f, s = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "matrix": sk.confusion_matrix(y_true, y_pred, labels=labels),
        "accuracy": sk.accuracy_score(y_true, y_pred),
        "macro_f1": sk.f1_score(
            y_true, y_pred, average="macro", labels=labels, zero_division=0
        ),
        "precision": p,
        "recall": r,
        "f1": f,
        "support": s,
    }


def _check_against_sklearn(y_true, y_pred, num_classes):
    want = _sklearn(y_true, y_pred, num_classes)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    np.testing.assert_array_equal(matrix, want["matrix"])
    assert accuracy(y_true, y_pred) == pytest.approx(want["accuracy"], abs=1e-12)
    assert macro_f1(y_true, y_pred, num_classes) == pytest.approx(
        want["macro_f1"], abs=1e-12
    )
    precision, recall, f1 = precision_recall_f1(matrix)
    np.testing.assert_allclose(precision, want["precision"], atol=1e-12)
    np.testing.assert_allclose(recall, want["recall"], atol=1e-12)
    np.testing.assert_allclose(f1, want["f1"], atol=1e-12)
    names = [f"class {i}" for i in range(num_classes)]
    report = classification_report(y_true, y_pred, names)
    assert [c["support"] for c in report["per_class"].values()] == list(want["support"])


# Loops rather than parametrize: each test pays conftest's Keras session
# reset, which costs more than the checks themselves.
def test_matches_sklearn_on_random_labels():
    for seed in range(200):
        rng = np.random.default_rng(seed)
        num_classes = int(rng.integers(2, 21))
        # Small n often leaves classes out of the truth, the predictions or both.
        n = int(rng.integers(1, 3 * num_classes))
        y_true = rng.integers(0, num_classes, n)
        # Mostly right, so precision and recall are not all near chance.
        wrong = rng.integers(0, num_classes, n)
        y_pred = np.where(rng.random(n) < 0.6, y_true, wrong)
        try:
            _check_against_sklearn(y_true, y_pred, num_classes)
        except AssertionError as err:
            raise AssertionError(f"seed {seed}: {err}") from err


EDGE_CASES = [
    ([0], [0], 2),  # one example
    ([1, 1, 1], [1, 1, 1], 2),  # class 0 absent from truth and predictions
    ([0, 1, 2, 3], [0, 1, 2, 3], 4),  # perfect
    ([0, 1, 2, 3], [1, 2, 3, 0], 4),  # all wrong
    ([0, 0, 1, 2], [2, 2, 2, 2], 3),  # one class predicted for everything
    ([0, 1, 0, 1], [0, 1, 0, 1], 20),  # 18 of 20 classes never seen
    ([3, 3], [0, 0], 4),  # truth and predictions disjoint
]


def test_matches_sklearn_on_edge_cases():
    for y_true, y_pred, num_classes in EDGE_CASES:
        try:
            _check_against_sklearn(np.array(y_true), np.array(y_pred), num_classes)
        except AssertionError as err:
            raise AssertionError(f"{y_true} vs {y_pred}: {err}") from err


def test_hand_computed_case():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 2]
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, 3), [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    )
    # Per class: P = 1/2, 2/3, 1;  R = 1/2, 1, 1/2;  F1 = 1/2, 4/5, 2/3.
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert macro_f1(y_true, y_pred, 3) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    report = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert report["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )


def test_absent_class_counts_as_zero_in_macro_f1():
    # Perfect on the two classes present; the third, absent from both, is 0.
    assert macro_f1([0, 1], [0, 1], 2) == 1.0
    assert macro_f1([0, 1], [0, 1], 3) == pytest.approx(2 / 3)


def test_report_is_plain_json():
    report = classification_report(
        np.array([0, 1, 1], np.int32), np.array([0, 1, 0], np.int64), ("neg", "pos")
    )
    assert json.loads(json.dumps(report)) == report
    assert report["class_names"] == ["neg", "pos"]
    assert report["examples"] == 3
    assert report["confusion_matrix"] == [[1, 0], [1, 1]]
    assert list(report["per_class"]) == ["neg", "pos"]
    assert report["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: confusion_matrix([0, 1], [0], 2), "differ in length"),
        (lambda: confusion_matrix([0, 2], [0, 1], 2), r"lie in \[0, 2\)"),
        (lambda: confusion_matrix([0, -1], [0, 1], 2), r"lie in \[0, 2\)"),
        (lambda: confusion_matrix([0.0, 1.0], [0, 1], 2), "integer class ids"),
        (lambda: confusion_matrix([[0, 1]], [[0, 1]], 2), "one-dimensional"),
        (lambda: confusion_matrix([0], [0], 0), "num_classes"),
        (lambda: accuracy([], []), "zero examples"),
        (lambda: precision_recall_f1(np.zeros((2, 3))), "square"),
        (lambda: classification_report([0], [0], ["a", "a"]), "distinct"),
    ],
)
def test_bad_inputs_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_empty_labels_give_an_empty_matrix():
    np.testing.assert_array_equal(confusion_matrix([], [], 2), np.zeros((2, 2)))
