"""`benchmarks/char_lm_cells.py`: equal parameters, equal time, its results."""

import json
import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import char_lm_cells  # noqa: E402

CHARACTERS = list("abcdefghij ")


def test_the_rate_follows_a_cosine_over_time_and_training_stops_when_it_is_up():
    ticks = [0.0]
    seen = []
    schedule = char_lm_cells.CosineOverTime(0.1, 4.0, clock=lambda: ticks[0])
    # One second a batch: the tick comes before the schedule's check.
    tick = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda *_, **__: ticks.__setitem__(0, ticks[0] + 1.0)
    )
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda *_, **__: seen.append(
            float(model.optimizer.learning_rate)
        )
    )
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x, y = np.ones((8, 3)), np.ones((8, 1))
    model.fit(
        x, y, batch_size=1, epochs=5, callbacks=[tick, schedule, record], verbose=0
    )
    expected = [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert seen == pytest.approx(expected, rel=1e-6)
    assert schedule.steps == 4  # stopped after the batch that reached 4 s


def test_a_nonpositive_time_is_refused():
    with pytest.raises(ValueError, match="-1"):
        char_lm_cells.CosineOverTime(0.1, -1)


@pytest.mark.parametrize("cell", ["gru", "min_gru", "lstm"])
def test_matched_units_give_the_closest_parameter_count(cell):
    target = char_lm_cells.built("layer_norm_lstm", 24, CHARACTERS).count_params()
    units = char_lm_cells.matched_units(cell, target, CHARACTERS)

    def gap(u):
        return abs(char_lm_cells.built(cell, u, CHARACTERS).count_params() - target)

    assert gap(units) <= min(gap(units - 1), gap(units + 1))
    assert gap(units) < 0.1 * target


@pytest.mark.slow
def test_quick_run_writes_matching_json_and_markdown(shared_data, tmp_path):
    argv = ["--data", str(shared_data), "--quick", "--cells", "lstm,gru"]
    assert char_lm_cells.main([*argv, "--results", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "char_lm_cells_quick.json").read_text())
    assert [row["cell"] for row in results["rows"]] == ["lstm", "gru"]
    markdown = (tmp_path / "char_lm_cells_quick.md").read_text()
    for row in results["rows"]:
        assert row["steps"] >= 1
        assert 0.0 < row["bits_per_character"] < 10.0
        assert f"| {row['bits_per_character']:.3f} |" in markdown
