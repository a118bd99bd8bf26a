"""Time series for forecasters: real series shipped with statsmodels, or a CSV.

`load_series(source)` reads one of three real series that install with
statsmodels (no network), or a user's CSV file:

- "co2": atmospheric CO2 at Mauna Loa (ppm), weekly, March 1958 to
  December 2001: 2,284 weeks, 59 of them missing; period 52;
- "elnino": monthly sea surface temperature (degrees C) of the Pacific at
  0-10 S, 90-80 W, 1950 to 2010 (statsmodels' years x months table,
  flattened): 732 months; period 12;
- "sunspots": yearly sunspot activity, 1700 to 2008: 309 years; period 11
  (the solar cycle);
- a CSV path: a time column (dates, or integers such as years) and a value
  column (`time_column`, `value_column`; by default the first column and
  the only other one, or the one named "value"). Rows are sorted by time;
  a row missing from the regular time grid (a skipped week, say) and an
  empty cell are both gaps. The seasonal period is inferred from the time
  step (hourly 24, daily 7, weekly 52, monthly 12, quarterly 4, else 1)
  unless given.

Gaps: a `TimeSeries` keeps them as NaN; leading and trailing gaps are
dropped. What reads a series decides per use: a model's input window is
filled causally (`window_inputs`: linear interpolation between the known
values around a gap, and the last known value for a gap that runs up to
the forecast origin, so nothing after the origin is ever read), while a
target left unknown stays NaN and is left out of the loss and the scores.

Splits are by time, never shuffled: `split(fraction)` returns the earlier
part and the later part. The later part carries the whole history before
it as context (`scored_from` marks where its own values begin), because a
forecast from its first origin reads the `window` values before that
origin. The test split is the final `TEST_FRACTION` of a series
(`split_train_test`), the same stretch whatever the model's window or
horizon, so every forecaster is scored on the same values.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from recurrent_zoo.forecast_metrics import origins

__all__ = [
    "CALENDAR_FEATURES",
    "SERIES",
    "TEST_FRACTION",
    "TimeSeries",
    "calendar_features",
    "fill_gaps",
    "load_series",
    "split_train_test",
    "window_inputs",
]

# The real series `load_series` knows by name, with their seasonal periods.
SERIES: dict[str, int] = {"co2": 52, "elnino": 12, "sunspots": 11}
# The share of a series held out at its end as the test stretch.
TEST_FRACTION = 0.1
# Calendar covariates: sine and cosine of the position within the year.
CALENDAR_FEATURES = 2


@dataclass(frozen=True)
class TimeSeries:
    """One series on a regular time grid, gaps as NaN.

    Attributes:
        name: the series' name ("co2") or its file's path.
        times: one time per value: `datetime64[D]`, or integers (years).
        values: float64, NaN where unknown.
        period: the seasonal period in steps (MASE's seasonal naive).
        covariates: (len(values), C) known features of every step (e.g.
            `calendar_features`), or None.
        scored_from: the index of the first value this part scores or
            trains on; the values before it are context only.
        held_out: how many values follow this part in the series it was
            split from (the validation and test stretches).
        class_names: always empty (the run core's data share this field).
    """

    name: str
    times: np.ndarray
    values: np.ndarray
    period: int = 1
    covariates: np.ndarray | None = None
    scored_from: int = 0
    held_out: int = 0
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        object.__setattr__(self, "values", values)
        if values.ndim != 1 or len(self.times) != len(values):
            raise ValueError(
                f"{self.name}: values must be 1-D with one time each, got "
                f"{values.shape} values and {len(self.times)} times"
            )
        if isinstance(self.period, bool) or int(self.period) != self.period:
            raise ValueError(
                f"{self.name}: period must be an integer, got {self.period!r}"
            )
        if self.period < 1:
            raise ValueError(f"{self.name}: period must be >= 1, got {self.period!r}")
        if not 0 <= self.scored_from < max(len(values), 1):
            raise ValueError(
                f"{self.name}: scored_from must lie in [0, {len(values)}), got "
                f"{self.scored_from}"
            )
        if self.covariates is not None:
            covariates = np.asarray(self.covariates, dtype=np.float64)
            if covariates.ndim != 2 or len(covariates) != len(values):
                raise ValueError(
                    f"{self.name}: covariates must be (values, features), got "
                    f"{covariates.shape} for {len(values)} values"
                )
            if not np.isfinite(covariates).all():
                raise ValueError(f"{self.name}: covariates must all be known")
            object.__setattr__(self, "covariates", covariates)

    def __len__(self) -> int:
        """The values this part scores (those from `scored_from` on)."""
        return len(self.values) - self.scored_from

    @property
    def stretch(self) -> np.ndarray:
        """This part's own values (NaN at gaps), context excluded."""
        return self.values[self.scored_from :]

    def head(self, stop: int) -> TimeSeries:
        """The first `stop` steps (what follows them counts as held out)."""
        return replace(
            self,
            times=self.times[:stop],
            values=self.values[:stop],
            covariates=None if self.covariates is None else self.covariates[:stop],
            held_out=self.held_out + len(self.values) - stop,
        )

    def split(
        self, fraction: float, seed: int | None = None
    ) -> tuple[TimeSeries, TimeSeries]:
        """(earlier, later): the last `fraction` of this part's values held out.

        The later part keeps all the history before it as context (its
        `scored_from` is where the earlier one ends). By time, so `seed`
        is ignored (it is there for the run core, which seeds every split).
        At least one value goes to each part.

        Raises:
            ValueError: if `fraction` is outside (0, 1) or this part scores
                fewer than two values.
        """
        del seed  # a split by time draws nothing
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
        if len(self) < 2:
            raise ValueError(
                f"{self.name}: cannot hold out a part of {len(self)} value(s)"
            )
        held = min(max(1, math.ceil(fraction * len(self))), len(self) - 1)
        cut = len(self.values) - held
        return self.head(cut), replace(self, scored_from=cut)

    def origins(self, window: int, horizon: int, every: int = 1) -> np.ndarray:
        """The forecast origins of this part: each reads the `window` values
        before it and forecasts `horizon` values of this part's own.

        Raises:
            ValueError: naming the series, if there is no room for one.
        """
        start = max(self.scored_from, window)
        if len(self.values) - start < horizon:
            raise ValueError(
                f"{self.name}: {len(self.values)} values ({len(self)} of them "
                f"this part's own) leave no room for a window of {window} then "
                f"a horizon of {horizon}; use a shorter window or horizon"
            )
        return origins(start, len(self.values), horizon, every)


def split_train_test(
    series: TimeSeries, fraction: float = TEST_FRACTION
) -> tuple[TimeSeries, TimeSeries]:
    """(train, test): the test split is the last `fraction` of the series,
    with the whole history before it as context (see `TimeSeries.split`)."""
    return series.split(fraction)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN gaps; the end gaps take the nearest
    known value.

    Raises:
        ValueError: if no value is known.
    """
    values = np.asarray(values, dtype=np.float64)
    known = np.isfinite(values)
    if not known.any():
        raise ValueError(f"no known value among {len(values)} to fill gaps from")
    if known.all():
        return values.copy()
    steps = np.arange(len(values))
    return np.interp(steps, steps[known], values[known])


def window_inputs(values: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """The `window` values before each origin, gaps filled causally.

    A gap between two known values before the origin is interpolated
    linearly; a gap that runs up to the origin takes the last known value
    (interpolating it would read the future). Nothing at or after an
    origin is read.

    Args:
        values: the series, NaN at gaps.
        ends: the origins (each window is `values[end - window : end]`).
        window: the window length.

    Returns:
        (len(ends), window) float64, all finite.

    Raises:
        ValueError: if a window reaches before the series' start or past
            its end, or no value before an origin is known.
    """
    values = np.asarray(values, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    if ends.size and (ends.min() < window or ends.max() > len(values)):
        raise ValueError(
            f"origins must lie in [{window}, {len(values)}] for a window of "
            f"{window}, got {ends.min()} to {ends.max()}"
        )
    known = np.isfinite(values)
    # The last known index at or before each step (-1: none yet).
    last_known = np.maximum.accumulate(np.where(known, np.arange(len(values)), -1))
    before = last_known[ends - 1] if ends.size else ends
    if (before < 0).any():
        raise ValueError("no known value before a forecast origin")
    positions = ends[:, None] - window + np.arange(window)[None, :]
    filled = fill_gaps(values)[positions]
    trailing = positions > before[:, None]
    return np.where(trailing, values[before][:, None], filled)


def calendar_features(times: np.ndarray) -> np.ndarray:
    """Sine and cosine of each time's position within its year, (n, 2).

    Raises:
        ValueError: on integer times (years: no position within a year).
    """
    times = np.asarray(times)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise ValueError(
            "calendar features need dates; this series is indexed by "
            f"{times.dtype} times (years?)"
        )
    days = times.astype("datetime64[D]")
    start = days.astype("datetime64[Y]").astype("datetime64[D]")
    length = (start.astype("datetime64[Y]") + 1).astype("datetime64[D]") - start
    phase = (days - start).astype(np.float64) / length.astype(np.float64)
    angle = 2.0 * np.pi * phase
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def load_series(
    source: str | os.PathLike[str],
    *,
    time_column: str | None = None,
    value_column: str | None = None,
    period: int | None = None,
    calendar: bool = False,
) -> TimeSeries:
    """A named real series or a CSV file's series (see the module).

    Args:
        source: "co2", "elnino", "sunspots", or a CSV file's path.
        time_column: the CSV's time column (default: its first).
        value_column: the CSV's value column (default: the only other
            column, or the one named "value").
        period: the seasonal period (default: the series' own, or inferred
            from the time step).
        calendar: attach `calendar_features` as the covariates.

    Raises:
        ValueError: in one line naming the file and column, if the source is
            neither a name nor a file, a column is missing or not numbers or
            times, times repeat or lie off a regular grid, or fewer than two
            values are known.
    """
    name = str(source)
    if name in SERIES:
        times, values, own_period = _statsmodels_series(name)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ValueError(
                f"{name!r} is neither a series name ({', '.join(SERIES)}) nor a "
                "CSV file"
            )
        times, values, own_period = _read_csv(path, time_column, value_column)
    known = np.flatnonzero(np.isfinite(values))
    if len(known) < 2:
        raise ValueError(f"{name}: {len(known)} known value(s); a series needs two")
    keep = slice(known[0], known[-1] + 1)  # end gaps dropped
    times, values = times[keep], values[keep]
    series = TimeSeries(name, times, values, own_period if period is None else period)
    if calendar:
        series = replace(series, covariates=calendar_features(series.times))
    return series


def _statsmodels_series(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    if name == "co2":
        from statsmodels.datasets import co2

        table = co2.load_pandas().data
        times = table.index.to_numpy().astype("datetime64[D]")
        return times, table["co2"].to_numpy(np.float64), SERIES[name]
    if name == "elnino":
        from statsmodels.datasets import elnino

        table = elnino.load_pandas().data
        years = table["YEAR"].to_numpy().astype(int)
        # Rows are years, columns JAN..DEC: row-major order is time order.
        values = table.drop(columns="YEAR").to_numpy(np.float64).ravel()
        first = np.datetime64(f"{years[0]}-01", "M")
        times = (first + np.arange(len(values))).astype("datetime64[D]")
        return times, values, SERIES[name]
    from statsmodels.datasets import sunspots

    table = sunspots.load_pandas().data
    years = table["YEAR"].to_numpy().astype(np.int64)
    return years, table["SUNACTIVITY"].to_numpy(np.float64), SERIES[name]


def _read_csv(
    path: Path, time_column: str | None, value_column: str | None
) -> tuple[np.ndarray, np.ndarray, int]:
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable CSV table ({err})") from None
    columns = [str(c) for c in table.columns]
    table.columns = columns
    time_column = time_column or (columns[0] if columns else None)
    if value_column is None:
        others = [c for c in columns if c != time_column]
        value_column = others[0] if len(others) == 1 else "value"
    for role, column in (("time", time_column), ("value", value_column)):
        if column not in columns:
            raise ValueError(
                f"{path}: no {role} column {column!r} (columns: {columns}); "
                f"name it ({role}_column=)"
            )
    raw = table[value_column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & raw.notna().to_numpy())
    if len(bad):
        raise ValueError(
            f"{path}: column {value_column!r} holds {raw.iloc[bad[0]]!r} on line "
            f"{bad[0] + 2}, not a number"
        )
    times = _parse_times(table[time_column], path, time_column)
    order = np.argsort(times, kind="stable")
    times, values = times[order], values.to_numpy(np.float64)[order]
    if len(times) < 2:
        raise ValueError(f"{path}: {len(times)} row(s); a series needs two")
    if (times[1:] == times[:-1]).any():
        repeated = times[1:][times[1:] == times[:-1]][0]
        raise ValueError(f"{path}: time {repeated} appears twice in {time_column!r}")
    return _on_grid(times, values, path, time_column)


def _parse_times(column, path: Path, name: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(np.int64)
    try:
        with warnings.catch_warnings():
            # Pandas warns when it guesses each row's format; a row it
            # cannot read still raises.
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(column, errors="raise")
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: column {name!r} is not times ({err})") from None
    if parsed.isna().any():
        raise ValueError(f"{path}: column {name!r} has an empty time")
    return parsed.to_numpy().astype("datetime64[s]")


def _on_grid(
    times: np.ndarray, values: np.ndarray, path: Path, name: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """The series on its regular grid (missing rows become NaN), and its
    inferred period."""
    if np.issubdtype(times.dtype, np.datetime64):
        # The smallest step: a missing row only widens the steps around it.
        days = float(np.diff(times).astype(np.float64).min()) / 86_400.0
        if 27.0 <= days <= 32.0 or 360.0 <= days <= 370.0:
            # Months and years vary in days: count them on the calendar.
            unit = "M" if days <= 32.0 else "Y"
            slots = times.astype(f"datetime64[{unit}]").astype(np.int64)
            slots -= slots[0]
            grid = times.astype(f"datetime64[{unit}]")[0] + np.arange(slots[-1] + 1)
            period = 12 if unit == "M" else 1
        else:
            seconds = np.round(days * 86_400.0)
            offsets = (times - times[0]).astype(np.float64) / seconds
            slots = _whole(offsets, path, name)
            grid = times[0] + np.arange(slots[-1] + 1) * np.timedelta64(
                int(seconds), "s"
            )
            period = {1 / 24: 24, 1.0: 7, 7.0: 52}.get(round(days, 6), 1)
            period = 4 if 89.0 <= days <= 93.0 else period
        grid = grid.astype("datetime64[D]") if days >= 1.0 else grid
    else:
        step = int(np.diff(times).min())
        slots = _whole((times - times[0]) / step, path, name)
        grid = times[0] + np.arange(slots[-1] + 1) * step
        period = 1
    if len(np.unique(slots)) != len(slots):
        raise ValueError(f"{path}: two rows of {name!r} fall in the same time step")
    full = np.full(len(grid), np.nan)
    full[slots] = values
    return grid, full, period


def _whole(offsets: np.ndarray, path: Path, name: str) -> np.ndarray:
    slots = np.round(offsets)
    if np.abs(offsets - slots).max() > 1e-6:
        raise ValueError(
            f"{path}: the times in {name!r} are not on a regular grid (the smallest "
            "step does not divide every gap between them)"
        )
    return slots.astype(np.int64)
