import numpy as np
import pytest
from layer_checks import check_config_round_trip

from recurrent_zoo.layers.trim_padding import TrimPadding


def test_cuts_to_longest_row():
    ids = np.array([[4, 2, 9, 0, 0, 0], [7, 1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(TrimPadding()(ids), ids[:, :3])


def test_full_rows_and_min_length():
    full = np.arange(1, 7).reshape(2, 3)
    np.testing.assert_array_equal(TrimPadding()(full), full)
    empty = np.zeros((3, 5), "int32")
    assert tuple(TrimPadding()(empty).shape) == (3, 1)
    assert tuple(TrimPadding(min_length=4)(empty).shape) == (3, 4)
    # min_length never pads beyond what is there.
    assert tuple(TrimPadding(min_length=9)(empty).shape) == (3, 5)


def test_custom_padding_id():
    ids = np.array([[3, 3, -1, -1], [3, -1, -1, -1]])
    np.testing.assert_array_equal(TrimPadding(padding_id=-1)(ids), ids[:, :2])


@pytest.mark.parametrize(
    "kwargs", [{"padding_id": 0.5}, {"padding_id": True}, {"min_length": 0}]
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=repr(next(iter(kwargs.values())))):
        TrimPadding(**kwargs)


def test_rejects_rank_3():
    with pytest.raises(ValueError, match="rank|batch, time"):
        TrimPadding()(np.zeros((2, 3, 4), "int32"))


def test_config_round_trip():
    check_config_round_trip(TrimPadding(padding_id=-1, min_length=3))
