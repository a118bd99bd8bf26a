"""Forecast accuracy on three real series: the recurrent forecaster against baselines.

    python benchmarks/forecasting.py                     # co2, elnino, sunspots
    python benchmarks/forecasting.py --series sunspots   # one, merged in
    python benchmarks/forecasting.py --quick             # smoke run

For each series (`recurrent_zoo.data.series`: CO2 weekly, El Nino monthly
sea temperature, yearly sunspots) the recurrent forecaster is trained by
`recurrent_zoo.training.train("forecaster", ...)`, the code behind
`recurrent-zoo train forecaster --data SERIES`: the test stretch is the
series' last tenth, validation the last tenth of what precedes it. Each
configuration of `SETTINGS` is trained until validation stops improving,
then refit on training and validation together for the epochs validation
chose (`refit=True`: the baselines fit on both, and validation is the
stretch nearest the test); the configuration with the lowest validation
loss is the network's row (the test stretch plays no part in choosing), and
it is retrained with two more seeds to show the spread. Its forecasts from
every origin of the test stretch (`rolling_forecasts`, each from the
history before the origin only) are scored beside the baselines'
(`recurrent_zoo.forecast_baselines`) from the same origins:

- seasonal naive (the last value of the same season);
- a linear autoregression on the network's window, direct multi-step;
- a statsmodels SARIMAX (dynamic harmonic regression, orders by AIC),
  fitted once and then rolled forward without refitting.

The baselines are fitted on everything before the test stretch. MAE, RMSE
and MASE pool every (origin, step) whose truth is known
(`recurrent_zoo.forecast_metrics`); MASE's scale is the in-sample
seasonal-naive error before the test stretch, as in the task's own score
(the script checks that its MASE of the network is the run's).

Results: `benchmarks/results/forecasting.{json,md}` (a run with `--series`
replaces those series' rows and keeps the others) and
`forecasting_<series>.png`: the test stretch and the forecasts of every
method from a few origins. Runs go to `benchmarks/runs/forecasting_<series>/`
(not committed); an unchanged finished run is reused, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from recurrent_zoo.environment import cores_text, run_record  # noqa: E402
from recurrent_zoo.forecast_baselines import (  # noqa: E402
    calendar_period,
    fit_statistical_model,
    linear_autoregression,
    seasonal_naive,
    statistical_model,
)
from recurrent_zoo.forecast_metrics import forecast_errors, mase_scale  # noqa: E402
from recurrent_zoo.training import train  # noqa: E402
from recurrent_zoo.training.forecasting import (  # noqa: E402
    load_forecast_split,
    rolling_forecasts,
)

# Every configuration builds fresh models, so retracing is expected.
tf.get_logger().setLevel("ERROR")

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
RUNS = ROOT / "runs"
MODEL = "recurrent forecaster"
SEASONAL_NAIVE = "seasonal naive"
LINEAR = "linear autoregression"
STATISTICAL = "SARIMAX"


def ensemble_label(seeds: int) -> str:
    return f"{MODEL}, mean of {seeds} seeds"


@dataclass(frozen=True)
class Setting:
    """One configuration of the network on a series (`train`'s arguments).

    `overrides` are the `Forecaster`'s (`cell`, `units`, `relative`,
    `calendar`, `dropout`, ...) beyond window and horizon.
    """

    horizon: int
    window: int
    overrides: dict = field(default_factory=dict)
    epochs: int = 30
    patience: int = 20
    batch_size: int = 16
    learning_rate: float | None = None  # None: the architecture's (3e-3)
    # Then trained again on train and validation for the epochs validation
    # chose: the baselines fit on both, and validation is the latest stretch.
    refit: bool = True

    def model_options(self) -> dict:
        return {**self.overrides, "horizon": self.horizon, "window": self.window}

    @property
    def label(self) -> str:
        """What differs from the architecture's defaults, in words."""
        o = self.overrides
        words = [f"{o.get('cell', 'layer_norm_lstm')} {list(o.get('units', (64,)))}"]
        words.append(f"window {self.window}")
        words.append("changes" if o.get("relative", True) else "levels")
        words += ["calendar"] if o.get("calendar") else []
        words += ["linear skip"] if o.get("linear_skip") else []
        words += [f"dropout {o['dropout']}"] if o.get("dropout") else []
        rate = self.learning_rate
        words += [f"lr {rate:g}"] if rate else []
        words.append(f"{self.epochs} epochs, batch {self.batch_size}")
        words += [] if self.refit else ["no refit"]
        return ", ".join(words)


GRU = {"cell": "gru"}
LEVELS = {"relative": False}
CALENDAR = {"calendar": True}
SKIP = {"linear_skip": True}


def with_and_without_skip(*settings: Setting) -> tuple[Setting, ...]:
    """Each configuration as it is, then with the linear skip added."""
    return settings + tuple(
        replace(s, overrides={**s.overrides, **SKIP}) for s in settings
    )


# The configurations tried on each series, each with and without the
# linear skip (LSTNet's highway: `Forecaster(linear_skip=True)`). Every one
# is trained; the one with the lowest validation loss (the test stretch
# never seen) is the network's row, and all are listed with their test
# scores below it.
SETTINGS: dict[str, tuple[Setting, ...]] = {
    # A quarter ahead from one or two years of weeks; 1,800 training weeks,
    # so batches of 32. Changes from the last value (the series trends).
    "co2": with_and_without_skip(
        Setting(13, 104, batch_size=32),
        Setting(13, 104, {**GRU, **CALENDAR}, batch_size=32),
        Setting(13, 52, {**GRU, **CALENDAR}, batch_size=32),
    ),
    # A year ahead from two or four years of months; levels, as the
    # temperature returns to its seasonal mean.
    "elnino": with_and_without_skip(
        Setting(12, 24, {**LEVELS, **CALENDAR}),
        Setting(12, 48, {**LEVELS, **CALENDAR, "units": (16,), "dropout": 0.3}),
        Setting(12, 48, {**LEVELS, **CALENDAR, **GRU}),
    ),
    # One solar cycle ahead from two or three; 250 training years.
    "sunspots": with_and_without_skip(
        Setting(11, 22, {**LEVELS, **GRU}),
        Setting(11, 33, {**LEVELS, **GRU}),
        Setting(11, 22, {**LEVELS, **GRU, "dropout": 0.3}),
    ),
}
QUICK = (Setting(11, 22, {"units": (4,)}, epochs=1, refit=False),)


def train_network(name: str, setting: Setting, runs: Path, seed: int) -> dict:
    """Trains (or reuses the finished run of) one configuration on a series."""
    slug = re.sub(r"[^a-z0-9]+", "_", setting.label.lower()).strip("_")
    folder = runs / f"forecasting_{name}" / f"{slug}_seed{seed}"
    metrics = train(
        "forecaster",
        name,
        folder,
        epochs=setting.epochs,
        batch_size=setting.batch_size,
        learning_rate=setting.learning_rate,
        patience=setting.patience,
        refit=setting.refit,
        seed=seed,
        overrides=setting.model_options(),
        command=run_record()["command"],
        verbose=0,
    )
    losses = [v for v in metrics["history"]["val_loss"] if np.isfinite(v)]
    return {
        "label": setting.label,
        "setting": asdict(setting),
        "seed": seed,
        "folder": folder,
        "val_loss": min(losses),
        "test_mase": metrics["test"]["mase"],
        # Both trainings: the one validation stops, and the refit.
        "train_seconds": metrics["train_seconds"]
        + (metrics.get("refit") or {}).get("train_seconds", 0.0),
        "refit_epochs": (metrics.get("refit") or {}).get("epochs"),
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "examples": metrics["examples"],
    }


def best_network(name: str, settings: tuple, runs: Path, seeds: list[int]) -> tuple:
    """Every configuration's run at the first seed, the one validation
    chooses, and that one's test MASE at each of `seeds` (the spread a
    reader should expect from retraining)."""
    tried = [train_network(name, s, runs, seeds[0]) for s in settings]
    for run in tried:
        print(
            f"[{name}] {run['label']}: val_loss {run['val_loss']:.4f}, "
            f"test MASE {run['test_mase']:.3f}",
            flush=True,
        )
    chosen = min(range(len(tried)), key=lambda i: tried[i]["val_loss"])
    again = [train_network(name, settings[chosen], runs, s) for s in seeds[1:]]
    mases = [tried[chosen]["test_mase"]] + [run["test_mase"] for run in again]
    spread = {
        "seeds": seeds,
        "test_mase": mases,
        "mean": float(np.mean(mases)),
        "std": float(np.std(mases, ddof=1)) if len(mases) > 1 else None,
        "folders": [tried[chosen]["folder"]] + [run["folder"] for run in again],
        "train_seconds": tried[chosen]["train_seconds"]
        + sum(run["train_seconds"] for run in again),
    }
    return tried, chosen, spread


def ensemble_forecasts(folders: list[Path], test) -> np.ndarray:
    """The mean of the forecasts of the models in `folders` (one per seed).

    Not what `recurrent-zoo train` ships (one model), but what averaging a
    few trainings buys, the usual remedy for a network's seed-to-seed spread
    on small data.
    """
    forecasts = []
    for folder in folders:
        model = keras.saving.load_model(folder / "model.keras", compile=False)
        forecasts.append(rolling_forecasts(model, test).forecasts)
    return np.mean(forecasts, axis=0)


def method_forecasts(name: str, network: dict, spread: dict, quick: bool) -> dict:
    """Every method's forecasts from the test stretch's origins, and their costs."""
    test = load_forecast_split("series", name, "test")
    model = keras.saving.load_model(network["folder"] / "model.keras", compile=False)
    rolled = rolling_forecasts(model, test)
    values, start, origins = test.values, test.scored_from, rolled.origins
    horizon = model.horizon
    forecasts = {MODEL: rolled.forecasts}
    seconds = {MODEL: network["train_seconds"]}
    if len(spread["folders"]) > 1:
        label = ensemble_label(len(spread["folders"]))
        forecasts[label] = ensemble_forecasts(spread["folders"], test)
        seconds[label] = spread["train_seconds"]

    started = time.perf_counter()
    forecasts[SEASONAL_NAIVE] = seasonal_naive(
        values, start, origins, horizon, period=test.period
    )
    seconds[SEASONAL_NAIVE] = time.perf_counter() - started
    started = time.perf_counter()
    forecasts[LINEAR] = linear_autoregression(
        values, start, origins, horizon, window=model.window
    )
    seconds[LINEAR] = time.perf_counter() - started
    season = calendar_period(test.times, test.period)
    grid = {"ar": (0, 1, 2), "ma": (0,)} if quick else {}
    fitted = fit_statistical_model(values[:start], season, **grid)
    forecasts[STATISTICAL] = statistical_model(
        values, start, origins, horizon, period=season, fitted=fitted
    )
    seconds[STATISTICAL] = fitted.seconds
    return {
        "test": test,
        "model": model,
        "rolled": rolled,
        "forecasts": forecasts,
        "seconds": seconds,
        "statistical": fitted,
    }


def score_series(
    name: str, settings: tuple, runs: Path, seeds: list[int], quick: bool
) -> tuple[dict, dict]:
    """One series' result (JSON-ready) and its forecasts (for the plot)."""
    tried, chosen, spread = best_network(name, settings, runs, seeds)
    network = tried[chosen]
    out = method_forecasts(name, network, spread, quick)
    test, rolled = out["test"], out["rolled"]
    start = test.scored_from
    scale = mase_scale(test.values[:start], test.period)
    errors = {
        method: forecast_errors(rolled.truth, forecasts, scale)
        for method, forecasts in out["forecasts"].items()
    }
    # What `recurrent-zoo train` reported for the same model and stretch.
    if not np.isclose(errors[MODEL]["mase"], network["test_mase"], rtol=1e-4):
        raise RuntimeError(
            f"{name}: MASE {errors[MODEL]['mase']} here, "
            f"{network['test_mase']} in the run"
        )
    rows = {}
    for method, error in errors.items():
        rows[method] = {
            **error,
            "seconds": out["seconds"][method],
            "beats_seasonal_naive": _beats(errors, method, SEASONAL_NAIVE),
            "beats_statistical_model": _beats(errors, method, STATISTICAL),
        }
    fitted = out["statistical"]
    result = {
        "series": name,
        "values": len(test.values),
        "missing": int(np.isnan(test.values).sum()),
        "examples": network["examples"],
        "period": test.period,
        "season": out["statistical"].period,
        "horizon": out["model"].horizon,
        "window": out["model"].window,
        "origins": len(rolled.origins),
        "mase_scale": scale,
        "methods": rows,
        "network": {
            **{k: v for k, v in network.items() if k != "folder"},
            "parameters": out["model"].count_params(),
            "config": out["model"].get_config(),
            "over_seeds": {k: v for k, v in spread.items() if k != "folders"},
        },
        "tried": [{k: v for k, v in run.items() if k != "folder"} for run in tried],
        "statistical_model": {
            "description": fitted.describe(),
            "order": list(fitted.order),
            "harmonics": fitted.harmonics,
            "aic": fitted.aic,
        },
        **run_record(),
    }
    return result, out


def _beats(errors: dict, method: str, other: str) -> bool | None:
    """Whether `method`'s MASE is below `other`'s (None: the same method)."""
    if method == other:
        return None
    return bool(errors[method]["mase"] < errors[other]["mase"])


COLORS = {
    MODEL: "tab:red",
    SEASONAL_NAIVE: "tab:gray",
    LINEAR: "tab:blue",
    STATISTICAL: "tab:green",
}


def plot_series(result: dict, out: dict, path: Path, paths: int = 4) -> Path:
    """The test stretch (and a little history) with every method's
    forecasts from `paths` non-overlapping origins, spread over it."""
    test, rolled = out["test"], out["rolled"]
    horizon, start = result["horizon"], test.scored_from
    times = test.times
    if not np.issubdtype(times.dtype, np.datetime64):
        times = times.astype(np.float64)
    shown = slice(max(start - 2 * horizon, 0), len(test.values))
    every = np.arange(0, len(rolled.origins), horizon)
    rows = every[np.linspace(0, len(every) - 1, min(paths, len(every))).astype(int)]
    figure = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(times[shown], test.values[shown], "k-", lw=1.2, label="observed")
    axes.axvline(times[start], color="k", ls=":", lw=0.8)
    for i, row in enumerate(rows):
        span = times[rolled.origins[row] + np.arange(horizon)]
        for method, forecasts in out["forecasts"].items():
            mase = result["methods"][method]["mase"]
            label = f"{method} (MASE {mase:.3f})" if i == 0 else None
            style = "-" if method in COLORS else "--"  # the seeds' mean
            color = COLORS.get(method, "tab:purple")
            axes.plot(span, forecasts[row], style, color=color, label=label)
        if rolled.quantiles is not None:
            axes.fill_between(
                span,
                rolled.quantiles[row, :, 0],
                rolled.quantiles[row, :, -1],
                color=COLORS[MODEL],
                alpha=0.15,
                label="network's outer quantiles" if i == 0 else None,
            )
    axes.set_title(
        f"{result['series']}: {horizon}-step forecasts from {len(rows)} of the "
        f"{result['origins']} test origins (dotted: the test stretch begins)"
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=110)
    return path


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "**no**")


def _series_lines(r: dict) -> list[str]:
    """One series' rows of the main table."""
    n = r["examples"]
    size = f"{r['values']:,} ({n['train']:,} / {n['validation']:,} / {n['test']:,})"
    lines = []
    for method, m in r["methods"].items():
        lines.append(
            f"| {r['series']} | {size} | {r['horizon']} | {r['window']} "
            f"| {method} | {m['mae']:.4f} | {m['rmse']:.4f} | {m['mase']:.4f} "
            f"| {_yes_no(m['beats_seasonal_naive'])} "
            f"| {_yes_no(m['beats_statistical_model'])} | {m['seconds']:.1f} |"
        )
    return lines


def _verdict(r: dict) -> str:
    """A sentence per series: where the network wins and loses, and the size."""
    m = r["methods"]
    mine = m[MODEL]["mase"]
    parts = []
    for other in (SEASONAL_NAIVE, LINEAR, STATISTICAL):
        word = "beats" if mine < m[other]["mase"] else "**loses to**"
        parts.append(f"{word} {other} ({m[other]['mase']:.3f})")
    ensemble = [m_ for m_ in m if m_.startswith(f"{MODEL}, mean of")]
    for method in ensemble:
        word = "beats" if m[method]["mase"] < m[STATISTICAL]["mase"] else "loses to"
        parts.append(f"the {method[len(MODEL) + 2 :]}' forecasts {word} SARIMAX")
        parts[-1] += f" ({m[method]['mase']:.3f})"
    n = r["examples"]
    spread = r["network"]["over_seeds"]
    seeds = ""
    if spread["std"] is not None:
        seeds = (
            f" (retrained with seeds {', '.join(map(str, spread['seeds']))}: "
            f"{spread['mean']:.3f} ± {spread['std']:.3f})"
        )
    return (
        f"- {r['series']}: the network's MASE {mine:.3f}{seeds} {', '.join(parts)}; "
        f"{r['values']:,} values ({r['missing']} missing), the network trained "
        f"on {n['train']:,} of them with {n['validation']:,} for validation; "
        f"{r['origins']} test origins. SARIMAX: "
        f"{r['statistical_model']['description']}."
    )


def write(results: dict, out: Path, stem: str) -> None:
    """`<stem>.json` and `<stem>.md` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Forecasting: the recurrent forecaster against baselines",
        "",
        "Written by `benchmarks/forecasting.py` (its docstring: the protocol).",
        "Every method forecasts `horizon` values from each origin of the",
        "test stretch (the series' last tenth), from the history before it.",
        "MASE divides the MAE by the seasonal-naive in-sample error of",
        "everything before the test stretch: below 1 beats that error.",
        "Size: values in all (train / validation / test). The network trains",
        "on train, validation picks its epochs and configuration, then it is",
        "refit on train and validation; the baselines fit on train and",
        "validation. Seconds: training and refit (the network), fitting and",
        "forecasting (the baselines).",
        "",
        "| series | size | horizon | window | method | MAE | RMSE | MASE "
        "| beats seasonal naive? | beats SARIMAX? | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results.values():
        lines += _series_lines(r)
    lines += ["", *[_verdict(r) for r in results.values()], ""]
    lines += [
        "## Configurations of the network tried",
        "",
        "Each trained on the training part (seed 0), then refit; the one with",
        "the lowest validation loss (before the refit) is the table's. Test",
        "MASE shown for all: the test stretch plays no part in the choice.",
        "These candidates were themselves drawn up after an exploratory sweep",
        "(cells, units, windows, levels or changes, calendar, dropout, learning",
        "rate, epochs) whose test scores were seen, so the network's row is",
        "not quite an untouched test score; the baselines had no such tuning",
        "beyond SARIMAX's search by AIC on the training data. Each candidate",
        "is tried as it is and with the linear skip (`linear_skip=True`, a",
        "linear map of the window added to the head: LSTNet's highway); the",
        "skip was added to the three candidates unchanged, after that sweep.",
        "",
        "| series | configuration | validation loss | test MASE | epochs (best) "
        "| seconds | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results.values():
        for run in r["tried"]:
            chosen = "yes" if run["label"] == r["network"]["label"] else ""
            lines.append(
                f"| {r['series']} | {run['label']} | {run['val_loss']:.5f} "
                f"| {run['test_mase']:.4f} | {run['epochs_run']} "
                f"({run['best_epoch']}) | {run['train_seconds']:.0f} | {chosen} |"
            )
    lines += ["", "Commands and machines:", ""]
    for r in results.values():
        machine = r["machine"]
        lines.append(
            f"- {r['series']}: `{r['command']}` on {r['date'][:10]}, "
            f"{machine['cpu']} ({cores_text(machine)}, GPUs: "
            f"{machine['gpus'] or 'none'}), TF {machine['tensorflow']}, "
            f"Keras {machine['keras']}"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--series",
        help=f"comma-separated, of {', '.join(SETTINGS)} (default: all; "
        "sunspots with --quick)",
    )
    parser.add_argument("--epochs", type=int, help="override every configuration's")
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(v) for v in text.split(",")],
        default=None,
        help="comma-separated: every configuration trained at the first, the "
        "chosen one at all (default 0,1,2; 0 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny network, writes forecasting_quick.*"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--runs", type=Path, default=RUNS)
    args = parser.parse_args(argv)
    default = "sunspots" if args.quick else ",".join(SETTINGS)
    names = [n for n in (args.series or default).split(",") if n]
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown series {unknown}; known: {list(SETTINGS)}")
    stem = "forecasting_quick" if args.quick else "forecasting"
    path = args.results / f"{stem}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    started = time.perf_counter()
    for name in names:
        settings = QUICK if args.quick else SETTINGS[name]
        if args.epochs:
            settings = tuple(replace(s, epochs=args.epochs) for s in settings)
        seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
        result, out = score_series(name, settings, args.runs, seeds, args.quick)
        plot_series(result, out, args.results / f"{stem}_{name}.png")
        results[name] = result
        write(results, args.results, stem)  # each series kept as it finishes
        print(_verdict(result), flush=True)
    print(f"done in {time.perf_counter() - started:.0f} s: {args.results / stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
