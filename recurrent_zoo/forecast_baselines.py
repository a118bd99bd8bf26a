"""Baseline forecasters for the rolling-origin protocol of `forecast_metrics`.

A recurrent forecaster is only worth its training time if it beats what a
forecaster would try first. Three baselines, one interface: each takes the
whole series (NaN marks a gap), the index `train_end` where its fitting
stretch ends, the forecast origins and the horizon, and returns a
`(len(origins), horizon)` array whose row `i` forecasts
`values[origins[i] : origins[i] + horizon]` from `values[: origins[i]]` only.
Each is fitted once on `values[:train_end]` (never on the held-out stretch)
and then only reads the observed values up to each origin, as the network
does; origins must not lie before `train_end`.

- `seasonal_naive`: the last value of the same season (the floor MASE is
  measured against).
- `linear_autoregression`: a linear model of the last `window` values, the
  network's input, one regression per horizon step (direct multi-step).
- `statistical_model`: statsmodels SARIMAX as a dynamic harmonic regression
  (ARIMA errors, season as Fourier terms), orders chosen by AIC.

On the data floor: windows are read and gaps filled by
`recurrent_zoo.data.series` (`window_inputs`, `fill_gaps`), the very
functions that give the network its inputs, so the linear autoregression
reads exactly the network's window. Importing this module imports
`recurrent_zoo.data` (and TensorFlow with it); statsmodels and
scikit-learn are imported by the functions that need them.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from recurrent_zoo.data.series import fill_gaps, window_inputs

__all__ = [
    "BASELINES",
    "StatisticalFit",
    "baseline_forecasts",
    "calendar_period",
    "fit_linear_autoregression",
    "fit_statistical_model",
    "fourier_terms",
    "linear_autoregression",
    "seasonal_naive",
    "statistical_model",
]


def _check(values: np.ndarray, train_end: int, origins: np.ndarray, horizon: int):
    """The shared arguments, validated: values as float64, origins as ints."""
    values = np.asarray(values, dtype=np.float64)
    origins = np.asarray(origins, dtype=np.int64)
    if values.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got {values.shape}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not 0 < train_end <= len(values):
        raise ValueError(f"train_end {train_end} outside 1..{len(values)}")
    if origins.size and (origins.min() < train_end or origins.max() > len(values)):
        raise ValueError(
            f"origins must lie in [train_end={train_end}, {len(values)}]: a "
            "baseline fitted on values[:train_end] cannot forecast before it"
        )
    return values, origins


def seasonal_naive(
    values: np.ndarray,
    train_end: int,
    origins: np.ndarray,
    horizon: int,
    *,
    period: int,
) -> np.ndarray:
    """Each step forecast by the latest known value of its season before the origin.

    Step `j` (0-based) of origin `o` reads `values[o + j - k * period]` for
    the smallest whole number of periods `k` that lands before `o` (the
    usual `y[T + h - m * (floor((h - 1) / m) + 1)]`); where that value is a
    gap, `k` grows a period at a time, so the season stays the same. If the
    season has no known value at all before `o` (a series shorter than a
    period), the last known value is used (the naive forecast).
    """
    values, origins = _check(values, train_end, origins, horizon)
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    forecasts = np.full((len(origins), horizon), np.nan)
    for row, origin in enumerate(origins):
        for step in range(horizon):
            index = origin + step - period * (step // period + 1)
            while index >= 0 and np.isnan(values[index]):
                index -= period
            if index >= 0:
                forecasts[row, step] = values[index]
            else:
                forecasts[row, step] = _last_known(values, origin)
    return forecasts


def _last_known(values: np.ndarray, origin: int) -> float:
    known = np.flatnonzero(np.isfinite(values[:origin]))
    if known.size == 0:
        raise ValueError(f"no known value before origin {origin}")
    return float(values[known[-1]])


def fit_linear_autoregression(
    values: np.ndarray, train_end: int, window: int, horizon: int, alpha: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """The direct multi-step regressions: (coefficients, intercepts).

    Step `j` has its own ridge regression (scikit-learn `Ridge`, intercept
    fitted) of `y[t + j]` on `y[t - window : t]`, fitted on every `t` whose
    window and targets lie inside `values[:train_end]`; an example whose
    target is a gap is dropped for that step only, gaps in windows are
    filled as the network's are (`window_inputs`). `alpha` is tiny (nearly
    least squares), just enough to keep a collinear window (a smooth
    series) well posed; the regression reads raw values, as the network's
    output is in them too.

    Returns:
        coefficients `(horizon, window)`, oldest lag first; intercepts
        `(horizon,)`.
    """
    from sklearn.linear_model import Ridge

    values = np.asarray(values, dtype=np.float64)
    ends = np.arange(window, train_end - horizon + 1)
    if ends.size == 0:
        raise ValueError(
            f"no training window: {train_end} training values for a window of "
            f"{window} and a horizon of {horizon}"
        )
    inputs = window_inputs(values, ends, window)
    targets = values[ends[:, None] + np.arange(horizon)[None, :]]
    coefficients = np.empty((horizon, window))
    intercepts = np.empty(horizon)
    for step in range(horizon):
        keep = np.isfinite(targets[:, step])
        if not keep.any():
            raise ValueError(f"no known training target for step {step + 1}")
        model = Ridge(alpha=alpha).fit(inputs[keep], targets[keep, step])
        coefficients[step], intercepts[step] = model.coef_, model.intercept_
    return coefficients, intercepts


def linear_autoregression(
    values: np.ndarray,
    train_end: int,
    origins: np.ndarray,
    horizon: int,
    *,
    window: int,
    alpha: float = 1e-6,
) -> np.ndarray:
    """Direct multi-step linear autoregression on the network's window.

    The linear model of the network's exact inputs: the last `window`
    values, gaps filled the same way, one output per step
    (`fit_linear_autoregression`, on the training stretch only). Direct
    rather than recursive, as the network emits all `horizon` steps at
    once: what differs between the two is the model, not how errors
    compound.
    """
    values, origins = _check(values, train_end, origins, horizon)
    coefficients, intercepts = fit_linear_autoregression(
        values, train_end, window, horizon, alpha
    )
    return window_inputs(values, origins, window) @ coefficients.T + intercepts


def fourier_terms(positions: np.ndarray, period: float, harmonics: int) -> np.ndarray:
    """`(len(positions), 2 * harmonics)` sines and cosines of the season.

    `sin(2 pi k t / period)` and `cos(...)` for `k = 1..harmonics`: a smooth
    seasonal shape of any period, even a fractional one (52.18 weeks a
    year), with `2 * harmonics` coefficients instead of `period`.
    """
    t = np.asarray(positions, dtype=np.float64)[:, None]
    k = np.arange(1, harmonics + 1)[None, :]
    angle = 2.0 * np.pi * k * t / period
    return np.hstack([np.sin(angle), np.cos(angle)])


@dataclass
class StatisticalFit:
    """A SARIMAX fitted on a training stretch, and how it was chosen.

    Attributes:
        order: (p, d, q) of the ARIMA errors.
        harmonics: Fourier pairs of the season (0: no seasonal terms).
        period: the season's length in steps (may be fractional).
        results: statsmodels' `SARIMAXResults` on the training stretch.
        aic: AIC of every candidate: "AR(p) K=harmonics least squares" for
            the search's least-squares fits, "(p,d,q) K=harmonics" for the
            maximum-likelihood SARIMAX fits (the two do not compare).
        seconds: wall time of the whole search.
    """

    order: tuple[int, int, int]
    harmonics: int
    period: float
    results: object = field(repr=False)
    aic: dict[str, float] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    def exog(self, start: int, stop: int) -> np.ndarray | None:
        """The Fourier regressors of positions `start .. stop - 1`."""
        if self.harmonics == 0:
            return None
        return fourier_terms(np.arange(start, stop), self.period, self.harmonics)

    def describe(self) -> str:
        p, d, q = self.order
        return f"SARIMAX({p},{d},{q}) + {self.harmonics} Fourier pairs"


def _differencing(train: np.ndarray) -> int:
    """0 or 1: whether KPSS rejects level stationarity at 5% (auto.arima's test).

    Gaps are interpolated for the test only. A trending series (CO2) gets
    d = 1 with a drift; a mean-reverting one (sea temperature, sunspots)
    keeps its levels, so forecasts return towards the mean.
    """
    from statsmodels.tools.sm_exceptions import InterpolationWarning
    from statsmodels.tsa.stattools import kpss

    filled = fill_gaps(train)
    with warnings.catch_warnings():
        # Beyond the p-value table (reported at its edge), and statsmodels
        # 0.15's notice that the tuple becomes a result object (which still
        # indexes alike).
        warnings.simplefilter("ignore", InterpolationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        p_value = kpss(filled, regression="c", nlags="auto")[1]
    return int(p_value < 0.05)


def _fit_sarimax(train: np.ndarray, order, harmonics: int, period: float):
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    exog = None
    if harmonics:
        exog = fourier_terms(np.arange(len(train)), period, harmonics)
    model = SARIMAX(train, exog=exog, order=order, trend="c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on poor candidates
        return model.fit(disp=False, maxiter=200)


def _select_by_least_squares(
    train: np.ndarray,
    d: int,
    period: float,
    ar: Sequence[int],
    harmonics: Sequence[int],
) -> dict[tuple[int, int], float]:
    """AIC of every (p, K): an AR(p) of the d-differenced series on K Fourier
    pairs and a constant, by least squares (statsmodels `AutoReg`), all on the
    same sample. Gaps are interpolated here only. Differencing maps a
    sinusoid to one of the same frequency, so the Fourier terms of the
    levels span those of the differences."""
    from statsmodels.tsa.ar_model import AutoReg

    y = np.diff(fill_gaps(train), n=d)
    positions = np.arange(d, len(train))
    hold = max(ar)
    scores = {}
    for k in harmonics:
        exog = fourier_terms(positions, period, k) if k else None
        for p in ar:
            model = AutoReg(y, lags=p, trend="c", exog=exog, hold_back=hold)
            scores[(p, k)] = float(model.fit().aic)
    return scores


def fit_statistical_model(
    train: np.ndarray,
    period: float,
    *,
    ar: Sequence[int] = tuple(range(13)),
    ma: Sequence[int] = (0, 1),
    harmonics: Sequence[int] = (0, 1, 2, 3, 4, 5),
    differencing: int | None = None,
) -> StatisticalFit:
    """Dynamic harmonic regression: SARIMAX with Fourier seasonal terms, by AIC.

    Why not a seasonal ARIMA: with CO2's weekly period a `(0,1,1)x(0,1,1,52)`
    model took 246 s for one fit here (a state of over a hundred entries
    filtered over 1,800 weeks). Fourier terms as regressors (Hyndman and
    Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed.,
    section 10.5) give a smooth season with a few coefficients for any
    period, a fractional one too (52.18 weeks a year: with 52, the season
    drifts by seven weeks over CO2's training stretch), and keep SARIMAX's
    Kalman filter, which skips the series' gaps natively.

    The search, like auto.arima's with its `approximation`: `d` by a KPSS
    test (unless `differencing` is given); then the AR order `p` and the
    harmonics `K` by AIC of least-squares fits (`_select_by_least_squares`:
    78 fits in about a second, where 18 maximum-likelihood fits took one to
    two minutes here); then, with those, the MA order by the AIC of the
    maximum-likelihood SARIMAX fits (`ma`), the best one kept. The AR range
    is wide for sunspots, whose irregular 11-year cycle AIC follows with an
    AR(9) beside three harmonics. A constant is always fitted: a mean when
    d = 0, a drift when d = 1.
    """
    started = time.perf_counter()
    train = np.asarray(train, dtype=np.float64)
    d = _differencing(train) if differencing is None else differencing
    usable = [k for k in harmonics if 2 * k < period]
    selection = _select_by_least_squares(train, d, period, ar, usable)
    p, k = min(selection, key=selection.get)
    aic = {f"AR({p_}) K={k_} least squares": v for (p_, k_), v in selection.items()}
    fits = {q: _fit_sarimax(train, (p, d, q), k, period) for q in ma}
    for q, fit in fits.items():
        aic[f"({p},{d},{q}) K={k}"] = float(fit.aic)
    q = min(fits, key=lambda q_: fits[q_].aic if math.isfinite(fits[q_].aic) else 1e300)
    return StatisticalFit(
        order=(p, d, q),
        harmonics=k,
        period=float(period),
        results=fits[q],
        aic=aic,
        seconds=time.perf_counter() - started,
    )


def statistical_model(
    values: np.ndarray,
    train_end: int,
    origins: np.ndarray,
    horizon: int,
    *,
    period: float,
    fitted: StatisticalFit | None = None,
) -> np.ndarray:
    """SARIMAX fitted once on `values[:train_end]`, then rolled over the origins.

    Between origins the fitted results are extended with the newly observed
    values (`results.extend`: the Kalman filter runs on, parameters kept;
    gaps skipped), and each origin forecasts `horizon` steps from the
    filter's state there: the standard rolling-origin evaluation without
    refitting. `fitted` reuses a `fit_statistical_model` result (it must
    come from `values[:train_end]`).
    """
    values, origins = _check(values, train_end, origins, horizon)
    if fitted is None:
        fitted = fit_statistical_model(values[:train_end], period)
    if np.any(np.diff(origins) < 0):
        raise ValueError("origins must be in increasing order")
    results, position = fitted.results, train_end
    forecasts = np.empty((len(origins), horizon))
    for row, origin in enumerate(origins):
        if origin > position:
            results = results.extend(
                values[position:origin], exog=fitted.exog(position, origin)
            )
            position = origin
        exog = fitted.exog(origin, origin + horizon)
        forecasts[row] = results.forecast(horizon, exog=exog)
    return forecasts


# The baselines `baseline_forecasts` runs, in the order of its tables.
BASELINES = ("seasonal_naive", "linear_autoregression", "statistical_model")


def calendar_period(times: np.ndarray, period: int) -> float:
    """The season's exact length in steps, where the period is a year.

    A weekly series' year is 52.18 weeks, not 52: Fourier terms of period 52
    drift a week every five and a half years. Where `times` are dates and
    `period` steps of a fixed length (days, weeks) span a year (within 3%),
    the year's mean length in steps; otherwise `period` itself (months,
    years, or a season that is not a year: sunspots' 11-year cycle).
    """
    times = np.asarray(times)
    if not np.issubdtype(times.dtype, np.datetime64) or len(times) < 2:
        return float(period)
    step = np.median(np.diff(times.astype("datetime64[s]")).astype(np.float64))
    days = step / 86_400.0
    if 27.0 <= days <= 32.0 or days >= 360.0:
        return float(period)  # calendar months and years: whole steps a year
    year = 365.2425
    if abs(period * days - year) <= 0.03 * year:
        return year / days
    return float(period)


def baseline_forecasts(
    values: np.ndarray,
    train_end: int,
    origins: np.ndarray,
    horizon: int,
    *,
    period: int,
    window: int,
    season: float | None = None,
    names: Sequence[str] = BASELINES,
) -> dict[str, np.ndarray]:
    """Every baseline's `(len(origins), horizon)` forecasts, by name.

    `period` is the seasonal naive's (an integer); `season` the statistical
    model's (`calendar_period`; default `period`).
    """
    season = float(period) if season is None else season
    run: dict[str, Callable[[], np.ndarray]] = {
        "seasonal_naive": lambda: seasonal_naive(
            values, train_end, origins, horizon, period=period
        ),
        "linear_autoregression": lambda: linear_autoregression(
            values, train_end, origins, horizon, window=window
        ),
        "statistical_model": lambda: statistical_model(
            values, train_end, origins, horizon, period=season
        ),
    }
    unknown = sorted(set(names) - set(run))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; known: {list(run)}")
    return {name: run[name]() for name in names}
