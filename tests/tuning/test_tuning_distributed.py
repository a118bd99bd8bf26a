"""Roles, devices, and a real chief with two workers on 127.0.0.1."""

import json
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from tuning_support import free_port, kill, read_logs, start, trials, tune_command

from recurrent_zoo.tuning import DevicePlan, enable_memory_growth, plan_devices, role
from recurrent_zoo.tuning.oracles import PatientOracleClient

ORACLE = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}


def test_role_follows_keras_tuner_variables():
    assert role({}) == "standalone"
    assert role({**ORACLE, "KERASTUNER_TUNER_ID": "chief"}) == "chief"
    assert role({**ORACLE, "KERASTUNER_TUNER_ID": "tuner3"}) == "worker"
    with pytest.raises(ValueError, match="missing: KERASTUNER_TUNER_ID"):
        role(ORACLE)
    with pytest.raises(ValueError, match="port number"):
        role({**ORACLE, "KERASTUNER_ORACLE_PORT": "http", "KERASTUNER_TUNER_ID": "a"})


def test_device_plans_for_faked_machines():
    gpus = ["/job:localhost/replica:0/task:0/device:GPU:0",
            "/job:localhost/replica:0/task:0/device:GPU:1"]  # fmt: skip
    assert plan_devices([]) == DevicePlan("default", ("/device:CPU:0",))
    assert plan_devices([]).describe() == "CPU:0 (no GPU found)"
    assert plan_devices([]).strategy() is None
    one = plan_devices(gpus[:1])
    # One GPU needs no strategy: TensorFlow places the trial there.
    assert one == DevicePlan("default", tuple(gpus[:1])) and one.strategy() is None
    assert one.describe() == "GPU:0"
    both = plan_devices(gpus)
    assert both == DevicePlan("mirrored", tuple(gpus))
    assert both.describe() == "mirrored over GPU:0, GPU:1 (2 replicas)"


def test_memory_growth_is_set_on_every_gpu_before_initialization():
    grown = []

    def set_memory_growth(gpu, enabled):
        if gpu.name.endswith("2"):
            raise RuntimeError(
                "Physical devices cannot be modified after being initialized"
            )
        grown.append((gpu.name, enabled))

    def fake(names):
        return SimpleNamespace(
            list_physical_devices=lambda kind: [SimpleNamespace(name=n) for n in names],
            experimental=SimpleNamespace(set_memory_growth=set_memory_growth),
        )

    names = ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    assert enable_memory_growth(fake(names)) == names
    assert grown == [(n, True) for n in names]
    assert enable_memory_growth(fake(["/physical_device:GPU:2"])) == []
    assert enable_memory_growth(fake([])) == []


def test_patient_client_waits_only_after_an_idle_answer():
    answers = iter(["IDLE", "RUNNING", "STOPPED"])
    client = SimpleNamespace(
        create_trial=lambda tuner_id: SimpleNamespace(status=next(answers)),
        objective="val_accuracy",
    )
    slept = []
    patient = PatientOracleClient(client, wait=0.5, sleep=slept.append)
    statuses = [patient.create_trial("tuner0").status for _ in range(3)]
    assert statuses == ["IDLE", "RUNNING", "STOPPED"] and slept == [0.5]
    assert patient.objective == "val_accuracy"
    patient.should_report = False  # keras-tuner sets this on its client
    assert client.should_report is False


MIRRORED_TRIAL = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
from recurrent_zoo.tuning import DevicePlan, TextClassifierHyperModel
from recurrent_zoo.tuning import load_task_data, run_search

replicas = []
build = TextClassifierHyperModel.build

def build_and_record(self, hp):
    replicas.append(tf.distribute.get_strategy().num_replicas_in_sync)
    return build(self, hp)

TextClassifierHyperModel.build = build_and_record
devices = tuple(d.name for d in tf.config.list_logical_devices("CPU"))
train, validation = load_task_data("sentiment", sys.argv[1], max_per_class=16)
result = run_search(
    "sentiment", train, validation, sys.argv[2], tuner="random", max_trials=1,
    epochs=1, batch_size=8, space=dict(units=(4,), embedding_dims=(8,), max_layers=1),
    fixed=dict(vocabulary_size=200, sequence_length=16, attention_units=4),
    devices=DevicePlan("mirrored", devices), verbose=0, log=lambda line: None,
)
print(json.dumps({
    "replicas": replicas, "devices": list(devices),
    "statuses": [t.status for t in result.trials],
    "val_accuracy": result.trials[0].val_accuracy,
    "retrained": result.retrained_val_accuracy,
}))
"""


@pytest.mark.slow  # about 40 s alone, minutes on a busy machine
def test_trials_run_under_a_mirrored_strategy(shared_data, tmp_path):
    # Two logical CPUs stand in for two GPUs: the same MirroredStrategy path
    # (models built in its scope, batches split, gradients all-reduced).
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_TRIAL, str(shared_data), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", **dict(__import__("os").environ)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["devices"]) == 2
    # keras-tuner discovers the space outside the strategy; the trial's
    # model and the retrained one are built in its scope, over 2 replicas.
    assert result["replicas"][-2:] == [2, 2]
    assert result["statuses"] == ["COMPLETED"]
    assert 0.0 <= result["val_accuracy"] <= 1.0
    assert 0.0 <= result["retrained"] <= 1.0


@pytest.mark.slow  # three processes, each importing TensorFlow
@pytest.mark.alone
def test_chief_and_two_workers_record_every_trial_once(shared_data, tmp_path):
    directory = tmp_path / "search"
    command = tune_command(
        shared_data, directory,
        "--tuner", "random", "--max-trials", "3", "--epochs", "1",
        "--max-layers", "1", "--no-retrain", "--quiet",
    )  # fmt: skip
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1"}
    oracle["KERASTUNER_ORACLE_PORT"] = str(free_port())
    names = ("chief", "tuner0", "tuner1")
    logs = {name: tmp_path / f"{name}.log" for name in names}
    processes = {}
    try:
        for name in names:
            processes[name] = start(
                command, logs[name], KERASTUNER_TUNER_ID=name, **oracle
            )
        deadline = time.monotonic() + 480
        for name in names:
            try:
                processes[name].wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not exit\n{read_logs(tuple(logs.values()))}")
    finally:
        for process in processes.values():
            kill(process)
    output = {name: logs[name].read_text(errors="replace") for name in names}
    codes = {name: p.returncode for name, p in processes.items()}
    assert codes == dict.fromkeys(names, 0), read_logs(tuple(logs.values()))

    project = directory / "sentiment_random"
    recorded = trials(project)
    assert sorted(recorded) == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in recorded.values())

    # Workers ran the trials, each exactly once; the chief ran none.
    def ran(name):
        return re.findall(r"^trial (\d+) completed", output[name], re.MULTILINE)

    assert sorted(ran("tuner0") + ran("tuner1")) == ["0", "1", "2"]
    assert ran("chief") == []
    assert "chief process: serves trials to the workers on 127.0.0.1" in output["chief"]
    assert "worker process; trials run on CPU:0" in output["tuner0"]
    for worker in ("tuner0", "tuner1"):
        assert f"worker {worker}: no trials left" in output[worker]
        assert not (project / f"{worker}_results").exists()
    # Only the chief wrote the results.
    summary = json.loads((project / "trials.json").read_text())
    assert [t["trial_id"] for t in summary["trials"]] == ["0", "1", "2"]
    assert "best hyperparameters:" in output["chief"]
    assert all("best hyperparameters:" not in output[w] for w in ("tuner0", "tuner1"))
    assert (project / "best_hyperparameters.json").is_file()
