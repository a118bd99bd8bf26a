"""Tuners by name, the oracles over our space, resuming state, the reports.

Trials here are driven through the oracles by hand (no model is trained),
so every path of the bookkeeping runs in well under a second.
"""

import json
import shutil

import keras_tuner as kt
import numpy as np
import pytest

from recurrent_zoo.data import load_imdb
from recurrent_zoo.tuning import (
    TUNERS,
    TextClassifierHyperModel,
    format_table,
    load_task_data,
    make_tuner,
    plot_val_accuracy,
    trial_records,
)

SPACE = dict(
    units=(4, 8, 16),
    embedding_dims=(8, 16),
    vocabulary_size=200,
    sequence_length=16,
    attention_units=4,
)


def _tuner(directory, name="random", max_trials=6, epochs=3, **kwargs):
    return make_tuner(
        TextClassifierHyperModel("sentiment", **SPACE),
        name,
        directory=directory,
        project_name="project",
        max_trials=max_trials,
        epochs=epochs,
        seed=1,
        log=lambda line: None,
        **kwargs,
    )


def _finish(oracle, trial, score, status="COMPLETED"):
    """What a tuner reports at the end of a trial."""
    if status == "COMPLETED":
        metrics = {"val_accuracy": score, "seconds": 2.5, "parameters": 1234.0}
        oracle.update_trial(trial.trial_id, {**metrics, "epochs": 1.0})
    trial.status = status
    oracle.end_trial(trial)


def _check_values(values):
    assert values["num_layers"] in (1, 2)
    assert ("units_1" in values) == (values["num_layers"] == 2)
    assert values["units_0"] in (4, 8, 16) and values.get("units_1", 4) in (4, 8, 16)
    assert values["embedding_dim"] in (8, 16)
    assert values["learning_rate"] in (1e-3, 3e-3, 1e-2)
    assert 0.0 <= values["dropout"] <= 0.5 + 1e-9


@pytest.mark.parametrize(
    "name, tuner_class, oracle_class",
    [
        ("hyperband", kt.Hyperband, kt.oracles.HyperbandOracle),
        ("bayesian", kt.BayesianOptimization, kt.oracles.BayesianOptimizationOracle),
        ("random", kt.RandomSearch, kt.oracles.RandomSearchOracle),
    ],
)
def test_tuners_by_name(tmp_path, name, tuner_class, oracle_class):
    tuner = _tuner(tmp_path, name, max_trials=5)
    assert isinstance(tuner, tuner_class) and isinstance(tuner.oracle, oracle_class)
    assert tuner.oracle.objective.name == "val_accuracy"
    assert tuner.oracle.objective.direction == "max"
    assert tuner.oracle.max_trials == 5
    space = [hp.name for hp in tuner.oracle.get_space().space]
    assert space == ["num_layers", "units_0", "units_1", "embedding_dim", "dropout",
                     "learning_rate"]  # fmt: skip


def test_unknown_tuner_and_empty_budget_are_rejected(tmp_path):
    assert TUNERS == ("hyperband", "bayesian", "random")
    with pytest.raises(ValueError, match="tuner must be one of"):
        _tuner(tmp_path, "grid")
    with pytest.raises(ValueError, match="positive"):
        _tuner(tmp_path, max_trials=0)


# Random scores give the Gaussian process little to fit; that is expected.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bayesian_oracle_proposes_from_the_conditional_space(tmp_path):
    oracle = _tuner(tmp_path, "bayesian", max_trials=8).oracle
    rng = np.random.default_rng(0)
    seen = []
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        _check_values(trial.hyperparameters.values)
        seen.append(trial.hyperparameters.values)
        _finish(oracle, trial, float(rng.uniform(0.5, 0.9)))
    assert trial.status == "STOPPED" and len(seen) == 8
    # Past the 3 random points the Gaussian process proposes (and it does
    # not repeat a finished trial).
    assert len({json.dumps(v, sort_keys=True) for v in seen}) == 8


def test_hyperband_continues_the_best_and_stops_at_max_trials(tmp_path):
    oracle = _tuner(tmp_path, "hyperband", max_trials=6, epochs=3).oracle
    trials = []
    scores = [0.6, 0.8, 0.7, 0.75, 0.5, 0.55]
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        _check_values(trial.hyperparameters.values)
        trials.append(trial)
        _finish(oracle, trial, scores[len(trials) - 1])
    assert trial.status == "STOPPED" and len(trials) == 6
    epochs = [t.hyperparameters.values["tuner/epochs"] for t in trials]
    assert epochs == [1, 1, 1, 3, 3, 3]
    # The fourth trial carries on the best of the first three.
    assert trials[3].hyperparameters.values["tuner/trial_id"] == "1"
    assert trials[3].hyperparameters.values["tuner/initial_epoch"] == 1


def test_reload_reruns_an_interrupted_trial_with_its_values(tmp_path):
    tuner = _tuner(tmp_path)
    tuner.save()
    oracle = tuner.oracle
    _finish(oracle, oracle.create_trial("tuner0"), 0.7)
    interrupted = oracle.create_trial("tuner0")
    # A kill here: nothing more is written. A new process reloads.
    reloaded = _tuner(tmp_path).oracle
    assert reloaded._retry_queue == [interrupted.trial_id]
    again = reloaded.create_trial("tuner0")
    assert again.trial_id == interrupted.trial_id
    assert again.hyperparameters.values == interrupted.hyperparameters.values
    assert reloaded.trials["0"].status == "COMPLETED"


def test_a_trial_reported_after_a_chief_restart_is_not_run_again(tmp_path):
    tuner = _tuner(tmp_path)
    tuner.save()
    running = tuner.oracle.create_trial("tuner0")
    # The chief restarts while a worker trains; it queues the trial again.
    restarted = _tuner(tmp_path).oracle
    assert restarted._retry_queue == [running.trial_id]
    # The worker finishes and reports to the new chief.
    _finish(restarted, running, 0.7)
    assert restarted._retry_queue == [] and restarted.end_order == ["0"]
    assert restarted.create_trial("tuner1").trial_id == "1"


def test_reload_does_not_rerun_a_trial_that_ended_just_before_the_kill(tmp_path):
    tuner = _tuner(tmp_path)
    tuner.save()
    trial = tuner.oracle.create_trial("tuner0")
    _finish(tuner.oracle, trial, 0.7)
    # `end_trial` writes trial.json, then oracle.json: a kill in between
    # leaves oracle.json listing the finished trial as running.
    path = tmp_path / "project" / "oracle.json"
    state = json.loads(path.read_text())
    state["ongoing_trials"] = {"tuner0": "0"}
    state["end_order"] = []
    path.write_text(json.dumps(state))
    # keras-tuner's own oracle would run it again ...
    stock = kt.oracles.RandomSearchOracle(kt.Objective("val_accuracy", "max"))
    stock._set_project_dir(str(tmp_path), "project")
    stock.reload()
    assert stock._retry_queue == ["0"]
    # ... ours keeps its result.
    reloaded = _tuner(tmp_path).oracle
    assert reloaded._retry_queue == [] and reloaded.end_order == ["0"]
    assert reloaded.create_trial("tuner0").trial_id == "1"
    assert reloaded.trials["0"].score == pytest.approx(0.7)


def test_reload_forgets_a_trial_created_but_never_recorded(tmp_path):
    tuner = _tuner(tmp_path)
    tuner.save()
    _finish(tuner.oracle, tuner.oracle.create_trial("tuner0"), 0.7)
    path = tmp_path / "project" / "oracle.json"
    saved = path.read_text()
    orphan = tuner.oracle.create_trial("tuner0")
    # `create_trial` writes trial.json, then oracle.json: kill in between.
    path.write_text(saved)
    reloaded = _tuner(tmp_path).oracle
    assert reloaded.dropped_trials == (orphan.trial_id,)
    assert sorted(reloaded.trials) == ["0"] and reloaded._retry_queue == []
    assert reloaded.create_trial("tuner0").trial_id == orphan.trial_id


def test_no_partial_json_is_left_behind(tmp_path):
    tuner = _tuner(tmp_path)
    tuner.save()
    _finish(tuner.oracle, tuner.oracle.create_trial("tuner0"), 0.7)
    files = [p.name for p in (tmp_path / "project").rglob("*") if p.is_file()]
    assert not [name for name in files if ".partial" in name or name.endswith(".tmp")]
    assert {"oracle.json", "tuner0.json", "trial.json"} <= set(files)


def test_trial_table_records_and_plot(tmp_path):
    oracle = _tuner(tmp_path).oracle
    for score in (0.625, 0.75):
        _finish(oracle, oracle.create_trial("tuner0"), score)
    _finish(oracle, oracle.create_trial("tuner0"), None, status="FAILED")
    records = trial_records(oracle)
    assert [r.trial_id for r in records] == ["0", "1", "2"]
    assert [r.status for r in records] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert records[1].val_accuracy == 0.75 and records[2].val_accuracy is None
    assert records[0].parameters == 1234 and records[0].seconds == 2.5
    assert records[0].units == tuple(
        records[0].hyperparameters[f"units_{i}"]
        for i in range(records[0].hyperparameters["num_layers"])
    )
    table = format_table(records).splitlines()
    assert table[0].split() == [
        "trial", "status", "layers", "units", "embed", "dropout", "lr", "epochs",
        "val_accuracy", "seconds", "parameters",
    ]  # fmt: skip
    assert table[3].split()[:2] == ["1", "*"] and "0.7500" in table[3]
    assert table[4].split()[:2] == ["2", "failed"] and "1,234" not in table[4]
    path = plot_val_accuracy(records, tmp_path / "plot.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation_is_a_stratified_part_of_train(shared_data):
    train, validation = load_task_data(
        "sentiment", shared_data, max_per_class=30, validation_fraction=0.2
    )
    assert len(train) == 48 and len(validation) == 12
    assert np.bincount(validation.labels).tolist() == [6, 6]
    assert not set(train.texts) & set(validation.texts)
    source = load_imdb(shared_data, "train", max_per_class=30)
    assert sorted(train.texts + validation.texts) == sorted(source.texts)
    with pytest.raises(ValueError, match="validation_fraction"):
        load_task_data(
            "sentiment", shared_data, max_per_class=30, validation_fraction=1
        )


def test_topic_task_reads_the_newsgroups_training_split(shared_data):
    train, validation = load_task_data("topic", shared_data, max_per_class=3)
    assert len(train.class_names) == 20
    assert np.bincount(validation.labels, minlength=20).tolist() == [1] * 20
    assert len(train) == 40


def test_copying_a_project_elsewhere_resumes_it_there(tmp_path):
    # Resuming only reads the project folder: a search moved to another
    # machine (or restored from a backup) continues.
    tuner = _tuner(tmp_path / "a")
    tuner.save()
    _finish(tuner.oracle, tuner.oracle.create_trial("tuner0"), 0.7)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = _tuner(tmp_path / "b").oracle
    assert moved.trials["0"].score == pytest.approx(0.7)
    assert moved.create_trial("tuner0").trial_id == "1"
