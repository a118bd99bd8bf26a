"""`recurrent_zoo.distribute` and `train(strategy=...)`: TF_CONFIG, the global
batch, the workers' agreement on where to resume, and real runs: a
MirroredStrategy over two logical CPUs, and two worker processes on
127.0.0.1 (one of them killed, in the slow test)."""

import collections
import contextlib
import io
import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from recurrent_zoo.cli import build_parser, main
from recurrent_zoo.commands.train import command_line
from recurrent_zoo.distribute import (
    ClusterError,
    ClusterTask,
    Distribution,
    make_strategy,
    multi_worker_safe,
    parse_tf_config,
    per_replica_batch_size,
)
from recurrent_zoo.training import train
from recurrent_zoo.training.workers import agree_on_state as _agree_on_state

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_SCRIPT = Path(__file__).resolve().parent / "distribute_worker.py"


def _config(cluster, task_type="worker", index=0):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


# ------------------------------------------------------------------ TF_CONFIG


def test_tf_config_names_the_chief_and_each_workers_folder(tmp_path):
    two = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    first = parse_tf_config(_config(two, index=0))
    second = parse_tf_config(_config(two, index=1))
    assert first.num_workers == second.num_workers == 2
    # Without a "chief" job, worker 0 is the chief: it writes the run itself.
    assert first.is_chief and not second.is_chief
    assert first.output_dir(tmp_path) == tmp_path
    assert second.output_dir(tmp_path) == tmp_path / "workertemp_1"
    assert second.name == "worker 1"

    with_chief = {"chief": ["host-a:2222"], "worker": ["host-b:2222", "host-c:2222"]}
    chief = parse_tf_config(_config(with_chief, "chief", 0))
    worker0 = parse_tf_config(_config(with_chief, "worker", 0))
    assert chief.is_chief and chief.name == "chief" and chief.num_workers == 3
    assert not worker0.is_chief
    assert worker0.output_dir(tmp_path) == tmp_path / "workertemp_0"


@pytest.mark.parametrize(
    "text, message",
    [
        ("{cluster: 1}", "TF_CONFIG is not JSON"),
        ("[1, 2]", "must be a JSON object, got '[1, 2]'"),
        ('{"task": {"type": "worker", "index": 0}}', 'needs "cluster"'),
        ('{"cluster": {"worker": ["a:1"]}}', 'needs "task"'),
        (_config({"ps": ["a:1"], "worker": ["b:1"]}), "names the job 'ps'"),
        (_config({"worker": "a:1"}), "must be a list of \"host:port\", got 'a:1'"),
        (_config({"worker": []}), "lists no address"),
        (_config({"worker": ["a:1", "b"]}), "got 'b'"),
        (_config({"worker": ["a:1", "b:http"]}), "got 'b:http'"),
        (_config({"worker": ["a:1", "b:70000"]}), "got 'b:70000'"),
        (_config({"worker": ["a:1", "a:1"]}), "same address twice: ['a:1']"),
        (_config({"chief": ["a:1", "b:1"], "worker": ["c:1"]}), "2 chiefs"),
        (_config({"worker": ["a:1"]}, "chief"), "got 'chief'"),
        (_config({"worker": ["a:1"]}, "worker", "0"), "integer, got '0'"),
        (_config({"worker": ["a:1"]}, "worker", True), "integer, got True"),
        (_config({"worker": ["a:1", "b:1"]}, "worker", 2), '"index" 2 is out of range'),
    ],
)
def test_bad_tf_config_is_refused_quoting_the_value(text, message):
    with pytest.raises(ValueError, match=None) as caught:
        parse_tf_config(text)
    assert message in str(caught.value)


def test_strategy_names_and_tf_config_are_checked_before_anything_runs(tmp_path):
    assert make_strategy("default") is None
    default = Distribution.create("default")
    assert default.describe() == {"strategy": "default", "replicas": 1, "workers": 1}
    assert default.is_chief and not default.multi_worker
    assert default.output_dir(tmp_path) == tmp_path
    assert default.gather([1, 2]) == [(1.0, 2.0)]
    with pytest.raises(ValueError, match="one of .*'tpu'"):
        make_strategy("tpu")
    with pytest.raises(ValueError, match="'multiworker' needs TF_CONFIG"):
        make_strategy("multiworker", environ={})
    with pytest.raises(ValueError, match="is not JSON"):
        make_strategy("multiworker", environ={"TF_CONFIG": "worker:0"})
    with pytest.raises(ValueError, match="collective_timeout"):
        make_strategy("multiworker", collective_timeout=0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        train("sentiment", tmp_path / "no-data", tmp_path / "out", strategy="tpu")
    assert not (tmp_path / "out").exists()


def test_the_batch_size_is_global_and_split_evenly():
    assert per_replica_batch_size(64, 1) == 64
    assert per_replica_batch_size(64, 8) == 8
    with pytest.raises(ValueError, match=r"multiple of 3 \(e.g. 63 or 66\)"):
        per_replica_batch_size(64, 3)
    with pytest.raises(ValueError, match=r"multiple of 4 \(e.g. 4 or 8\)"):
        per_replica_batch_size(2, 4)


def test_train_command_takes_a_strategy_and_repeats_it():
    parser = build_parser()
    args = parser.parse_args(["train", "sentiment", "--strategy", "multiworker"])
    assert args.strategy == "multiworker" and args.collective_timeout == 600.0
    again = parser.parse_args(shlex.split(command_line(args))[1:])
    assert again.strategy == "multiworker"
    assert parser.parse_args(["train", "topic"]).strategy == "default"
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        parser.parse_args(["train", "topic", "--strategy", "tpu"])


def test_multi_worker_fix_leaves_other_reductions_to_keras():
    from keras.src.backend.tensorflow import trainer

    multi_worker_safe()
    patched = trainer.reduce_per_replica
    multi_worker_safe()  # idempotent: not wrapped twice
    assert trainer.reduce_per_replica is patched
    # Any strategy but a multi-worker one gets Keras's own reduction.
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    value = tf.constant(2.5)
    assert float(patched({"loss": value}, mirrored, "auto")["loss"]) == 2.5


# ---------------------------------------------- agreeing on where to resume


class _Cluster(Distribution):
    """A Distribution whose `gather` answers with the other workers' rows."""

    def __init__(self, index, others):
        jobs = {"worker": ("a:1", "b:1", "c:1")}
        super().__init__("multiworker", None, ClusterTask(jobs, "worker", index))
        self.index = index
        self.others = others

    @property
    def replicas(self):
        return 3

    def gather(self, values):
        rows = [tuple(float(v) for v in row) for row in self.others]
        rows.insert(self.index, tuple(float(v) for v in values))
        return rows


def _row(chief=False, refused=False, finished=False, fitted=False, done=0, prev=-1):
    return (chief, refused, finished, fitted, done, prev)


def _state(folder, done, previous=None, losses=(0.9, 0.8, 0.7, 0.6)):
    backup = folder / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": done}))
    (backup / "latest.weights.h5").write_bytes(f"weights {done}".encode())
    if previous is not None:
        (backup / "training_metadata.json.bkp").write_text(
            json.dumps({"epoch": previous})
        )
        (backup / "latest.weights.h5.bkp").write_bytes(f"weights {previous}".encode())
    rows = "".join(f"{e},{v}\r\n" for e, v in enumerate(losses[:done]))
    (folder / "history.csv").write_text("epoch,val_loss\r\n" + rows)
    return {"task": "sentiment"}  # run.json's arguments: only their presence counts


def _agree(cluster, folder, saved, finished=None, mistake=None, epochs=4):
    return _agree_on_state(cluster, folder, mistake, saved, finished, epochs, 2, 0)


def test_workers_resume_from_the_same_epoch(tmp_path):
    # A kill between two workers' end-of-epoch backups: worker 1 backed up
    # epoch 3, the chief only epoch 2. Worker 1 falls back to its previous
    # backup, so both run epoch 3 again, from the same weights.
    ahead = tmp_path / "ahead"
    saved = _state(ahead, done=3, previous=2)
    chief = _row(chief=True, done=2, prev=1)
    assert _agree(_Cluster(1, [chief, _row(done=2, prev=1)]), ahead, saved) == "go"
    backup = ahead / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    assert (backup / "latest.weights.h5").read_bytes() == b"weights 2"
    assert (ahead / "history.csv").read_text().splitlines()[1:] == ["0,0.9", "1,0.8"]

    # In step: nothing changes.
    even = tmp_path / "even"
    saved = _state(even, done=2, previous=1)
    assert _agree(_Cluster(1, [chief, _row(done=2, prev=1)]), even, saved) == "go"
    assert (even / "backup" / "latest.weights.h5").read_bytes() == b"weights 2"


def test_workers_stop_with_the_chief_or_fail_together(tmp_path):
    folder = tmp_path / "worker"
    saved = _state(folder, done=4, previous=3)
    # The chief's run is finished: nobody trains.
    finished = _row(chief=True, finished=True, fitted=True, done=4, prev=3)
    assert _agree(_Cluster(1, [finished, _row()]), folder, saved) == "stop"
    # The chief has trained every epoch but not yet scored the model: it
    # finishes alone; the workers have nothing to do.
    fitted = _row(chief=True, fitted=True, done=4, prev=3)
    assert _agree(_Cluster(1, [fitted, _row()]), folder, saved) == "stop"
    chief_folder = tmp_path / "chief"
    chief_saved = _state(chief_folder, done=4, previous=3)
    worker = _row(fitted=True, done=4, prev=3)
    assert _agree(_Cluster(0, [worker, worker]), chief_folder, chief_saved) == "go"

    # A worker without any state (a replaced machine) cannot catch up.
    fresh = tmp_path / "fresh"
    behind = _row(chief=True, done=2, prev=1)
    with pytest.raises(ClusterError, match=r"\[0, 2\].*copy of the chief"):
        _agree(_Cluster(1, [behind, _row(done=2, prev=1)]), fresh, None)

    # A worker that refuses to start (here: other arguments) fails; so do
    # the others, instead of waiting for it.
    mistake = ValueError("other arguments")
    with pytest.raises(ValueError, match="other arguments"):
        _agree(_Cluster(1, [behind, _row()]), folder, None, mistake=mistake)
    with pytest.raises(ClusterError, match="another worker refused"):
        _agree(_Cluster(1, [behind, _row(refused=True)]), folder, saved)


# ----------------------------------------------------------- real processes


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tf_configs(count):
    addresses = [f"127.0.0.1:{_free_port()}" for _ in range(count)]
    return [_config({"worker": addresses}, "worker", i) for i in range(count)]


def _start(command, log, **env):
    """Starts `command` in its own process group, output to `log`."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )


def _kill(process):
    """SIGKILLs the process's group (started by `_start`) and reaps it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _logs(logs):
    return "\n".join(
        f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
        for log in logs
        if log.exists()
    )


def _wait_all(processes, logs, timeout):
    """Waits for every process to exit; fails (with the logs) past `timeout`."""
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"a worker did not exit in {timeout} s\n{_logs(logs)}")
    return [p.returncode for p in processes]


@pytest.mark.slow  # one process, but about 40 s alone and minutes when busy
def test_mirrored_strategy_over_two_logical_cpus(shared_data, tmp_path):
    # Two logical CPUs stand in for two GPUs: the same MirroredStrategy path
    # (model built in its scope, batches split, gradients all-reduced).
    out, result, log = tmp_path / "run", tmp_path / "result.json", tmp_path / "log"
    command = [sys.executable, str(WORKER_SCRIPT), "mirrored"]
    process = _start([*command, str(shared_data), str(out), str(result)], log)
    try:
        assert _wait_all([process], [log], 300) == [0], _logs([log])
    finally:
        _kill(process)
    found = json.loads(result.read_text())
    metrics = found["metrics"]
    assert metrics["distribution"] == {
        "strategy": "mirrored",
        "replicas": 2,
        "workers": 1,
    }
    # Every variable, the custom layers' and the optimizer's included, is
    # one mirrored variable over both devices.
    assert found["variables"] > 40 and found["not_mirrored"] == []
    assert {"AttentionPooling", "LayerNormLSTM", "TrimPadding"} <= set(
        found["custom_layers"]
    )
    assert metrics["epochs_run"] == 1
    assert all(math.isfinite(v) for v in metrics["history"]["loss"])
    # Saved under the strategy, loaded without one.
    model = keras.saving.load_model(out / "model.keras")
    assert model.predict_proba(["a fine film", "dull"]).shape == (2, 2)


@pytest.mark.slow  # two worker processes
@pytest.mark.alone
def test_two_workers_train_one_model(shared_data, tmp_path):
    out = tmp_path / "run"
    results = [tmp_path / f"worker{i}.json" for i in range(2)]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    command = [sys.executable, str(WORKER_SCRIPT), "multiworker", str(shared_data)]
    processes = []
    try:
        for config, result, log in zip(_tf_configs(2), results, logs, strict=True):
            processes.append(
                _start([*command, str(out), str(result)], log, TF_CONFIG=config)
            )
        codes = _wait_all(processes, logs, 240)
    finally:
        for process in processes:
            _kill(process)
    assert codes == [0, 0], _logs(logs)
    found = [json.loads(result.read_text()) for result in results]

    # Each epoch, the workers' parts of the batches hold every training text
    # exactly once (DATA sharding of one pipeline, shuffled alike).
    from distribute_worker import MAX_PER_CLASS, SEED, VALIDATION_FRACTION

    from recurrent_zoo.data import load_corpus

    full = load_corpus("imdb", shared_data, "train", max_per_class=MAX_PER_CLASS)
    texts = full.split(VALIDATION_FRACTION, SEED)[0].texts
    for epoch in range(2):
        first, second = (f["received"][epoch] for f in found)
        assert collections.Counter(first + second) == collections.Counter(texts)
        assert len(first) == len(second) == len(texts) / 2
    assert found[0]["received"][0] != found[0]["received"][1]  # reshuffled

    # The same training seen from both sides: losses, rates, test score.
    chief, worker = (f["metrics"] for f in found)
    for key in ("loss", "val_loss", "accuracy", "learning_rate"):
        assert chief["history"][key] == worker["history"][key], key
    assert chief["test"] == worker["test"]
    assert chief["distribution"] == {
        "strategy": "multiworker",
        "replicas": 2,
        "workers": 2,
        "task": "worker 0",
        "chief": True,
    }
    assert worker["distribution"]["task"] == "worker 1"
    assert not worker["distribution"]["chief"]

    # Only the chief wrote the run; the worker removed its own folder.
    for name in ("model.keras", "metrics.json", "history.csv", "curves.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.iterdir() if "worker" in p.name) == []
    assert not (out / "backup").exists()
    assert json.loads((out / "metrics.json").read_text()) == chief

    # The chief's model loads and predicts in a single process, and scores
    # what it recorded.
    model = keras.saving.load_model(out / "model.keras")
    test = load_corpus("imdb", shared_data, "test", max_per_class=10, seed=SEED)
    probabilities = model.predict_proba(test.texts)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == test.labels))
    assert accuracy == pytest.approx(chief["test"]["accuracy"])


EPOCHS = 4
TRAIN_ARGS = [
    "--epochs", str(EPOCHS),
    "--patience", "10",  # no early stop
    "--max-per-class", "150",  # epochs of about 20 steps: a kill lands inside
    "--test-max-per-class", "10",
    "--batch-size", "16",
    "--units", "8",
    "--embedding-dim", "8",
    "--vocabulary-size", "2000",
    "--sequence-length", "64",
]  # fmt: skip


def _epochs_backed_up(backup):
    try:
        return json.loads((backup / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):  # absent, or caught mid-write
        return 0


def _history_rows(out):
    return (out / "history.csv").read_text().splitlines()[1:]


# Three cold starts of TensorFlow, two of them a pair of workers: about
# 2-3 minutes alone. `pytest -m slow tests/test_distribute.py`.
@pytest.mark.slow
@pytest.mark.alone
def test_killed_worker_stops_the_cluster_and_a_restart_resumes(shared_data, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "sentiment", "--data", str(shared_data), "--out", str(out)]
    argv += [*TRAIN_ARGS, "--strategy", "multiworker", "--collective-timeout", "60"]
    command = [sys.executable, "-m", "recurrent_zoo.cli", *argv]
    configs = _tf_configs(2)
    logs = [tmp_path / f"first{i}.log" for i in range(2)]
    processes = []
    try:
        for config, log in zip(configs, logs, strict=True):
            processes.append(_start(command, log, TF_CONFIG=config))
        # Both workers have backed up epoch 1: the kill lands in epoch 2.
        deadline = time.monotonic() + 300
        backups = [out / "backup", out / "workertemp_1" / "backup"]
        while min(_epochs_backed_up(b) for b in backups) < 1:
            if any(p.poll() is not None for p in processes):
                pytest.fail(f"a worker exited early\n{_logs(logs)}")
            if time.monotonic() > deadline:
                pytest.fail(f"no epoch finished in 300 s\n{_logs(logs)}")
            time.sleep(0.05)
        _kill(processes[1])
        killed = time.monotonic()
        # The survivor fails on its own, promptly, rather than waiting.
        assert _wait_all(processes[:1], logs, 120) == [1], _logs(logs)
        noticed = time.monotonic() - killed
    finally:
        for process in processes:
            _kill(process)
    survivor = logs[0].read_text(errors="replace")
    assert "worker 0 lost the cluster" in survivor, _logs(logs)
    assert "Restart the same command on every worker" in survivor
    assert noticed < 90, noticed
    done = _epochs_backed_up(out / "backup")
    assert 1 <= done < EPOCHS, f"the kill came too late: {done} epochs done"
    assert not (out / "metrics.json").exists()
    rows_before = _history_rows(out)[:done]
    # The chief's backup, resumed on a single machine with no strategy.
    single = tmp_path / "single"
    shutil.copytree(out, single, ignore=shutil.ignore_patterns("workertemp_*"))

    # The same command on both workers resumes after the last finished epoch.
    logs = [tmp_path / f"again{i}.log" for i in range(2)]
    processes = []
    try:
        for config, log in zip(configs, logs, strict=True):
            processes.append(_start(command, log, TF_CONFIG=config))
        codes = _wait_all(processes, logs, 300)
    finally:
        for process in processes:
            _kill(process)
    assert codes == [0, 0], _logs(logs)
    chief_log, worker_log = (log.read_text(errors="replace") for log in logs)
    assert f"Resuming {out}: {done} of {EPOCHS} epochs done." in chief_log
    assert "train sentiment (worker 1 of 2, done): test accuracy" in worker_log
    rows = _history_rows(out)
    assert [int(row.split(",")[0]) for row in rows] == list(range(EPOCHS))
    assert rows[:done] == rows_before  # finished epochs untouched
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == EPOCHS
    # One cosine decay over all epochs: the resumed epochs carried on.
    peak = 3e-3
    expected = [peak * 0.5 * (1 + math.cos(math.pi * e / EPOCHS)) for e in range(4)]
    assert metrics["history"]["learning_rate"] == pytest.approx(expected, rel=1e-4)
    assert not (out / "workertemp_1").exists() and not (out / "backup").exists()

    argv_single = [*argv[:5], str(single), *argv[6:]]
    argv_single[argv_single.index("multiworker")] = "default"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv_single) == 0
    assert f"Resuming {single}: {done} of {EPOCHS} epochs done." in stdout.getvalue()
    resumed = json.loads((single / "metrics.json").read_text())
    assert resumed["history"]["epoch"] == [1, 2, 3, 4]
    assert _history_rows(single)[:done] == rows_before
