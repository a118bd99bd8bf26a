"""Time series: the shipped series, CSV files, gaps, causal windows, splits by time."""

import numpy as np
import pytest
from statsmodels.datasets import co2, elnino, sunspots

from recurrent_zoo.data import TimeSeries, load_series
from recurrent_zoo.data.series import (
    calendar_features,
    fill_gaps,
    split_train_test,
    window_inputs,
)


def _series(values, **kwargs):
    values = np.asarray(values, dtype=np.float64)
    return TimeSeries("s", np.arange(len(values)), values, **kwargs)


# The shipped series, against statsmodels' own tables.


def test_co2_is_the_weekly_table_with_its_gaps():
    table = co2.load_pandas().data
    series = load_series("co2")
    assert series.period == 52 and len(series.values) == 2284
    np.testing.assert_array_equal(series.values, table["co2"].to_numpy())
    assert np.isnan(series.values).sum() == 59
    assert np.all(np.diff(series.times) == np.timedelta64(7, "D"))
    assert str(series.times[0]) == "1958-03-29"


def test_elnino_flattens_years_by_months_in_time_order():
    table = elnino.load_pandas().data
    series = load_series("elnino")
    assert series.period == 12 and len(series.values) == 61 * 12
    # 1951's January is the 13th month; December 2010 the last.
    assert series.values[12] == table.loc[1, "JAN"]
    assert series.values[-1] == table.loc[60, "DEC"]
    assert str(series.times[12]) == "1951-01-01"
    assert str(series.times[-1]) == "2010-12-01"


def test_sunspots_are_yearly_with_integer_years():
    table = sunspots.load_pandas().data
    series = load_series("sunspots")
    assert series.period == 11
    np.testing.assert_array_equal(series.values, table["SUNACTIVITY"].to_numpy())
    assert series.times[0] == 1700 and series.times[-1] == 2008


def test_calendar_covariates_are_the_position_in_the_year():
    series = load_series("elnino", calendar=True)
    assert series.covariates.shape == (732, 2)
    # January 1st: angle 0; July 2nd 2020 (a leap year): half the year.
    days = np.array(["2021-01-01", "2020-07-02"], dtype="datetime64[D]")
    np.testing.assert_allclose(calendar_features(days), [[0, 1], [0, -1]], atol=1e-12)
    with pytest.raises(ValueError, match="need dates"):
        load_series("sunspots", calendar=True)


# Splits by time.


def test_split_holds_out_the_end_and_carries_the_history():
    series = _series(np.arange(20.0))
    earlier, later = series.split(0.1, seed=123)
    assert len(earlier) == 18 and earlier.held_out == 2
    np.testing.assert_array_equal(earlier.values, np.arange(18.0))
    # The later part keeps every earlier value as context.
    assert len(later) == 2 and later.scored_from == 18
    np.testing.assert_array_equal(later.values, np.arange(20.0))
    np.testing.assert_array_equal(later.stretch, [18.0, 19.0])
    # ceil(0.25 * 18) = 5 more held out, by time again.
    train, validation = earlier.split(0.25)
    assert len(train) == 13 and train.held_out == 7
    assert validation.scored_from == 13 and len(validation.values) == 18


def test_the_test_split_is_the_last_tenth_whatever_the_model():
    train, test = split_train_test(load_series("sunspots"))
    assert len(test) == 31 and len(train) == 278  # ceil(30.9) = 31
    assert test.scored_from == 278 and len(test.values) == 309


def test_split_is_refused_with_nothing_to_hold_out():
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\)"):
        _series(np.arange(5.0)).split(1.0)
    with pytest.raises(ValueError, match="cannot hold out a part of 1 value"):
        _series([1.0, 2.0], scored_from=1).split(0.5)


def test_origins_of_a_part_forecast_its_own_values_only():
    later = _series(np.arange(20.0), scored_from=14)
    # A window of 5 before each origin, 3 values from it, all in [14, 20).
    np.testing.assert_array_equal(later.origins(5, 3), [14, 15, 16, 17])
    # The training part: the first origin has a whole window before it.
    np.testing.assert_array_equal(_series(np.arange(10.0)).origins(6, 2), [6, 7, 8])


def test_a_series_too_short_for_window_and_horizon_is_named():
    with pytest.raises(
        ValueError, match=r"s: 10 values .* window of 8 then a horizon of 3"
    ):
        _series(np.arange(10.0)).origins(8, 3)


# Gaps: filled causally in inputs.


def test_fill_gaps_interpolates_and_holds_the_ends():
    values = [np.nan, 1.0, np.nan, 3.0, np.nan, np.nan, 6.0, np.nan]
    np.testing.assert_allclose(fill_gaps(values), [1, 1, 2, 3, 4, 5, 6, 6])
    with pytest.raises(ValueError, match="no known value"):
        fill_gaps([np.nan, np.nan])


def test_window_inputs_never_read_at_or_after_the_origin():
    values = np.array([1.0, np.nan, 3.0, np.nan, np.nan, 6.0, np.nan])
    windows = window_inputs(values, np.array([3, 5, 7]), 3)
    # [1, (2), 3]; [3, (3), (3)]: the gap runs up to the origin, so it holds
    # 3 rather than interpolating toward 6; [(5), 6, (6)].
    np.testing.assert_allclose(windows, [[1, 2, 3], [3, 3, 3], [5, 6, 6]])
    changed = values.copy()
    changed[5:] = 100.0
    np.testing.assert_allclose(window_inputs(changed, np.array([5]), 3), [[3, 3, 3]])


def test_window_inputs_refuse_windows_off_the_series():
    with pytest.raises(ValueError, match=r"origins must lie in \[3, 4\]"):
        window_inputs(np.arange(4.0), np.array([2]), 3)


# A user's CSV.


def test_csv_missing_rows_and_empty_cells_are_gaps(tmp_path):
    path = tmp_path / "daily.csv"
    path.write_text(
        "date,sales\n"
        "2024-01-03,3\n"  # rows out of order are sorted by time
        "2024-01-01,1\n"
        "2024-01-02,\n"  # an empty cell
        "2024-01-05,5\n",  # 2024-01-04 is missing
        encoding="utf-8",
    )
    series = load_series(path)
    assert series.period == 7  # daily
    np.testing.assert_array_equal(series.values, [1, np.nan, 3, np.nan, 5])
    assert str(series.times[3]) == "2024-01-04"


def test_csv_months_years_and_named_columns(tmp_path):
    monthly = tmp_path / "monthly.csv"
    monthly.write_text(
        "month,value\n2023-11-30,1\n2023-12-31,2\n2024-02-29,4\n", encoding="utf-8"
    )
    series = load_series(monthly)
    assert series.period == 12
    np.testing.assert_array_equal(series.values, [1, 2, np.nan, 4])
    yearly = tmp_path / "yearly.csv"
    yearly.write_text(
        "id,year,count,other\n0,1990,5,9\n1,1991,6,9\n2,1993,7,9\n", encoding="utf-8"
    )
    series = load_series(yearly, time_column="year", value_column="count", period=3)
    assert series.period == 3
    np.testing.assert_array_equal(series.times, [1990, 1991, 1992, 1993])
    np.testing.assert_array_equal(series.values, [5, 6, np.nan, 7])


def test_end_gaps_are_dropped(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("t,v\n1,\n2,2\n3,\n4,4\n5,\n", encoding="utf-8")
    series = load_series(path)
    np.testing.assert_array_equal(series.times, [2, 3, 4])
    np.testing.assert_array_equal(series.values, [2, np.nan, 4])


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("t,v\n1,2\n2,x\n", {}, r"column 'v' holds 'x' on line 3, not a number"),
        ("t,a,b\n1,2,3\n2,3,4\n", {}, r"no value column 'value' \(columns"),
        ("t,v\n1,2\n2,3\n", {"time_column": "when"}, r"no time column 'when'"),
        ("t,v\n1,2\n1,3\n", {}, "time 1 appears twice in 't'"),
        ("t,v\n0,1\n2,2\n5,3\n", {}, "not on a regular grid"),
        ("t,v\n1,2\n2,\n3,\n", {}, "1 known value"),
        ("t,v\nmonday,1\ntuesday,2\n", {}, "column 't' is not times"),
    ],
)
def test_csv_errors_name_the_file_and_column(tmp_path, text, options, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        load_series(path, **options)
    assert "\n" not in str(caught.value)
    if "1 known value" not in message:
        assert str(path) in str(caught.value)


def test_a_source_neither_named_nor_a_file_is_refused():
    with pytest.raises(ValueError, match="neither a series name .* nor a CSV file"):
        load_series("co3")


def test_series_fields_are_checked():
    with pytest.raises(ValueError, match="period must be >= 1"):
        _series([1.0, 2.0], period=0)
    with pytest.raises(ValueError, match="one time each"):
        TimeSeries("s", np.arange(3), np.zeros(2))
    with pytest.raises(ValueError, match="covariates must all be known"):
        _series([1.0, 2.0], covariates=np.array([[np.nan], [1.0]]))
