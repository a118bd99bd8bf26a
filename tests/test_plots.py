import matplotlib
import numpy as np
import pytest

from recurrent_zoo.models.registry import NEWSGROUPS
from recurrent_zoo.plots import plot_confusion, plot_history

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    """(width, height) from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_history_plot_is_a_real_png(tmp_path):
    backend = matplotlib.get_backend()
    history = {
        "epoch": [1, 2, 3],
        "loss": [0.69, 0.52, 0.41],
        "val_loss": [0.66, 0.55, None],  # metrics.json writes NaN as null
        "accuracy": [0.55, 0.74, 0.82],
        "val_accuracy": [0.6, 0.71, 0.73],
    }
    path = plot_history(history, tmp_path / "sub" / "curves.png")
    assert path == tmp_path / "sub" / "curves.png"
    width, height = _png_size(path)
    assert width > height > 300  # two panels side by side
    assert path.stat().st_size > 15_000  # axes, lines and labels, not a blank
    # Drawing must not switch the caller's pyplot backend.
    assert matplotlib.get_backend() == backend


def test_history_plot_without_accuracy_has_one_panel(tmp_path):
    one = _png_size(plot_history({"loss": [1.0, 0.5]}, tmp_path / "one.png"))
    two = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.6]}
    both = _png_size(plot_history(two, tmp_path / "two.png"))
    assert both[0] > 1.5 * one[0]


def test_history_plot_rejects_bad_series(tmp_path):
    with pytest.raises(ValueError, match="loss"):
        plot_history({"accuracy": [0.5]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="val_loss"):
        plot_history({"loss": [1.0, 0.9], "val_loss": [1.0]}, tmp_path / "x.png")


def test_confusion_plot_with_twenty_classes(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, (20, 20)) + np.diag(rng.integers(20, 80, 20))
    matrix[3] = 0  # a class with no examples must not divide by zero
    path = plot_confusion(matrix, NEWSGROUPS, tmp_path / "confusion.png")
    width, height = _png_size(path)
    # Grows with the classes so that 20 long names and 400 cells stay legible.
    assert min(width, height) > 900
    assert path.stat().st_size > 60_000
    small = plot_confusion([[5, 1], [2, 7]], ["neg", "pos"], tmp_path / "2.png")
    assert _png_size(small)[1] < height
    assert small.stat().st_size > 10_000


def test_confusion_plot_checks_the_shape(tmp_path):
    with pytest.raises(ValueError, match="2x2"):
        plot_confusion([[1, 2, 3]], ["a", "b"], tmp_path / "x.png")
