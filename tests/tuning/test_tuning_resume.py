"""A search killed with SIGKILL mid-trial resumes when run again.

One real search (three tiny Hyperband trials) is killed while a trial
runs and then rerun with the same command; the tests check what each
step left behind.
"""

import json
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import pytest
from tuning_support import kill, read_logs, start, trials, tune_command, wait_for

import recurrent_zoo.models  # noqa: F401  (registers TextClassifier for loading)
from recurrent_zoo.tuning import load_task_data, run_search

SEARCH = ("--max-trials", "3", "--epochs", "1", "--max-layers", "1")
# A search killed and resumed in subprocesses: about a minute for the module.
pytestmark = [pytest.mark.slow, pytest.mark.alone]


@pytest.fixture(scope="module")
def killed_then_resumed(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    command = tune_command(shared_data, root / "search", *SEARCH, "--quiet")
    project = root / "search" / "sentiment_hyperband"
    first_log = root / "first.log"
    first = start(command, first_log)
    try:

        def one_completed_one_running() -> bool:
            statuses = [t["status"] for t in trials(project).values()]
            return "COMPLETED" in statuses and "RUNNING" in statuses

        wait_for(
            one_completed_one_running,
            timeout=300,
            what="a completed and a running trial",
            processes=(first,),
            logs=(first_log,),
        )
        # Past the new trial's creation, into its model build and fit.
        time.sleep(1.5)
    finally:
        kill(first)
    before = trials(project)
    oracle_before = json.loads((project / "oracle.json").read_text())
    results_before = (project / "best_hyperparameters.json").exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=420)
    return SimpleNamespace(
        data=shared_data,
        project=project,
        first=first,
        first_log=first_log,
        before=before,
        oracle_before=oracle_before,
        results_before=results_before,
        second=second,
        output=second.stdout + second.stderr,
        after=trials(project),
    )


def _interrupted(run) -> str:
    running = [i for i, t in run.before.items() if t["status"] == "RUNNING"]
    assert len(running) == 1, read_logs((run.first_log,))
    return running[0]


def _completed(run) -> dict:
    return {i: t for i, t in run.before.items() if t["status"] == "COMPLETED"}


def test_the_kill_left_a_running_trial(killed_then_resumed):
    run = killed_then_resumed
    assert run.first.returncode == -9
    assert _completed(run)
    # keras-tuner's state lists it as running: it was killed mid-trial.
    ongoing = list(run.oracle_before["ongoing_trials"].values())
    assert ongoing == [_interrupted(run)]
    assert not run.results_before


def test_rerun_completes_without_losing_or_repeating_trials(killed_then_resumed):
    run = killed_then_resumed
    assert run.second.returncode == 0, run.output[-4000:]
    interrupted, completed = _interrupted(run), _completed(run)
    assert (
        f"resuming {run.project}: {len(completed)} trial(s) completed, "
        f"interrupted trial(s) to re-run: ['{interrupted}']"
    ) in run.output
    assert sorted(run.after, key=int) == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in run.after.values())
    # Completed trials are untouched: same hyperparameters, metrics, score.
    for trial_id, state in completed.items():
        assert run.after[trial_id] == state
    # The interrupted trial ran again, with the values it had been given.
    assert (
        run.after[interrupted]["hyperparameters"]["values"]
        == run.before[interrupted]["hyperparameters"]["values"]
    )
    ran_now = re.findall(r"^trial (\d+) completed", run.output, flags=re.MULTILINE)
    assert interrupted in ran_now and not set(ran_now) & set(completed)
    assert sorted([*ran_now, *completed], key=int) == ["0", "1", "2"]


def test_rerun_writes_the_results(killed_then_resumed):
    project = killed_then_resumed.project
    summary = json.loads((project / "trials.json").read_text())
    assert [t["trial_id"] for t in summary["trials"]] == ["0", "1", "2"]
    assert summary["devices"] == ["/device:CPU:0"]
    assert (project / "trials.csv").read_text().count("\n") == 4
    best = json.loads((project / "best_hyperparameters.json").read_text())
    assert best["val_accuracy"] == max(t["val_accuracy"] for t in summary["trials"])
    assert (project / "val_accuracy_vs_units.png").read_bytes()[:4] == b"\x89PNG"
    model = keras.saving.load_model(project / "best_model.keras")
    assert list(model.units) == best["model"]["units"]
    assert model.embedding_dim == best["model"]["embedding_dim"]
    best_row = next(t for t in summary["trials"] if t["trial_id"] == best["trial_id"])
    assert model.count_params() == best_row["parameters"]
    assert model.predict_proba(["a wonderful film", "dull"]).shape == (2, 2)
    table = killed_then_resumed.output
    assert re.search(r"^\s*trial\s+status\s+layers\s+units", table, re.MULTILINE)


def _same_search(run, **space):
    """The CLI's search, in this process (the same data and settings)."""
    train, validation = load_task_data(
        "sentiment", run.data, max_per_class=40, validation_fraction=0.2
    )
    return run_search(
        "sentiment",
        train,
        validation,
        Path(run.project).parent,
        max_trials=3,
        epochs=1,
        batch_size=16,
        space=dict(units=(4, 8), embedding_dims=(8, 16), max_layers=1) | space,
        fixed=dict(vocabulary_size=500, sequence_length=16, attention_units=4),
        retrain=False,
        verbose=0,
        log=lambda line: None,
    )


def test_running_a_finished_search_again_runs_nothing(killed_then_resumed):
    run = killed_then_resumed
    result = _same_search(run)
    assert result.resumed == ["0", "1", "2"]
    assert [r.trial_id for r in result.trials] == ["0", "1", "2"]
    assert trials(run.project) == run.after


def test_resuming_with_another_space_is_refused(killed_then_resumed):
    with pytest.raises(ValueError, match="other settings .*search_space"):
        _same_search(killed_then_resumed, units=(4, 8, 16))
