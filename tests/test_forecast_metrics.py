"""MASE's scale, the rolling origins and the pooled errors, on hand cases."""

import math

import numpy as np
import pytest

from recurrent_zoo.forecast_metrics import forecast_errors, mase_scale, origins

NAN = np.nan


def test_mase_scale_is_the_in_sample_seasonal_naive_error():
    # Lag 1: |2-1|, |4-2|, |7-4| -> (1 + 2 + 3) / 3.
    assert mase_scale(np.array([1.0, 2.0, 4.0, 7.0]), 1) == pytest.approx(2.0)
    # Lag 2: |4-1|, |7-2| -> (3 + 5) / 2.
    assert mase_scale(np.array([1.0, 2.0, 4.0, 7.0]), 2) == pytest.approx(4.0)


def test_mase_scale_skips_pairs_with_a_gap():
    # Lag 1 pairs: (1,2) -> 1, (2,NaN) and (NaN,7) dropped, (7,11) -> 4.
    values = np.array([1.0, 2.0, NAN, 7.0, 11.0])
    assert mase_scale(values, 1) == pytest.approx(2.5)


@pytest.mark.parametrize("period", [0, -1, 1.5, True, None])
def test_mase_scale_rejects_a_period_that_is_not_a_positive_integer(period):
    with pytest.raises(ValueError, match="period must be a positive integer"):
        mase_scale(np.arange(5.0), period)


def test_mase_scale_needs_a_known_pair_and_a_nonzero_error():
    with pytest.raises(ValueError, match="two known training values 3 steps apart"):
        mase_scale(np.array([1.0, 2.0, 3.0]), 3)
    with pytest.raises(ValueError, match="two known training values 2 steps apart"):
        mase_scale(np.array([1.0, NAN, NAN, 4.0]), 2)
    with pytest.raises(ValueError, match="repeats itself exactly every 2 steps"):
        mase_scale(np.array([1.0, 5.0, 1.0, 5.0, 1.0]), 2)


def test_origins_keep_every_forecast_inside_the_stretch():
    # Stretch [10, 20), horizon 3: the last origin is 17 (forecasts 17..19).
    np.testing.assert_array_equal(origins(10, 20, 3), np.arange(10, 18))
    np.testing.assert_array_equal(origins(10, 20, 3, every=2), [10, 12, 14, 16])
    np.testing.assert_array_equal(origins(10, 20, 10), [10])


def test_origins_reject_a_stretch_shorter_than_the_horizon_and_bad_steps():
    with pytest.raises(ValueError, match="9 values, fewer than the horizon 10"):
        origins(10, 19, 10)
    with pytest.raises(ValueError, match="horizon and every must be >= 1"):
        origins(0, 10, 0)
    with pytest.raises(ValueError, match="horizon and every must be >= 1"):
        origins(0, 10, 2, every=0)


def test_forecast_errors_pool_the_known_values():
    truth = np.array([[1.0, 2.0], [3.0, NAN]])
    # NaN where the truth is unknown is allowed: it is never scored.
    forecasts = np.array([[2.0, 2.0], [1.0, NAN]])
    errors = forecast_errors(truth, forecasts, scale=2.0)
    # Errors +1, 0, -2 over three known values.
    assert errors["count"] == 3
    assert errors["mae"] == pytest.approx(1.0)
    assert errors["rmse"] == pytest.approx(math.sqrt(5.0 / 3.0))
    assert errors["mase"] == pytest.approx(0.5)
    # Step 1: (1 + 2) / 2 / 2; step 2: 0 / 1.
    assert errors["mase_by_step"] == pytest.approx([0.75, 0.0])


def test_forecast_errors_reject_bad_shapes_and_missing_forecasts():
    with pytest.raises(ValueError, match=r"2-D \(origins, horizon\)"):
        forecast_errors(np.zeros((2, 3)), np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match=r"2-D \(origins, horizon\)"):
        forecast_errors(np.zeros(3), np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="no true value is known"):
        forecast_errors(np.full((2, 2), NAN), np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="NaN or infinite where the truth is known"):
        forecast_errors(np.ones((1, 2)), np.array([[1.0, np.inf]]), 1.0)
