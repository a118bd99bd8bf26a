"""`recurrent-zoo tune`: its arguments and its light import."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from tuning_support import TINY

from recurrent_zoo.cli import build_parser, main
from recurrent_zoo.commands import tune
from recurrent_zoo.data import TextClassificationData
from recurrent_zoo.tuning import TUNERS, run_search


def test_arguments_parse_into_the_search_space():
    args = build_parser().parse_args(
        ["tune", "topic", "--data", "d", "--max-trials", "7", "--tuner", "random",
         "--unit-choices", "32,64", "--learning-rates", "1e-3,1e-2",
         "--dropout-range", "0,0.4,0.2", "--vocabulary-size", "5000"]
    )  # fmt: skip
    assert args.task == "topic" and args.max_trials == 7 and args.tuner == "random"
    assert args.units == (32, 64) and args.learning_rates == (1e-3, 1e-2)
    assert args.dropout_range == (0.0, 0.4, 0.2)
    assert args.vocabulary_size == 5000 and args.sequence_length is None
    assert args.directory == "tuning" and not args.overwrite
    assert args.handler is tune.run


def test_the_old_units_spelling_still_works_with_a_warning(capsys):
    args = build_parser().parse_args(["tune", "sentiment", "--units", "8,16"])
    assert args.units == (8, 16)
    assert "--units is deprecated" in capsys.readouterr().err
    args = build_parser().parse_args(["tune", "sentiment", "--unit-choices", "8"])
    assert args.units == (8,) and "--units" not in capsys.readouterr().err


def test_the_cells_to_search_parse_and_reach_the_space():
    args = build_parser().parse_args(
        ["tune", "sentiment", "--cells", "layer_norm_lstm,layer_norm_gru"]
    )
    assert args.cells == ("layer_norm_lstm", "layer_norm_gru")


@pytest.mark.parametrize(
    "bad",
    [
        ["--unit-choices", "4,eight"],
        ["--tuner", "grid"],
        ["--learning-rates", "fast"],
        ["--cell", "transformer"],
    ],
)
def test_bad_arguments_are_rejected(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "sentiment", *bad])
    assert "error" in capsys.readouterr().err


def test_the_command_offers_the_tuners_the_library_has():
    # Read from the catalog so that `--help` needs no TensorFlow import.
    assert tune.TUNERS == TUNERS


def test_help_does_not_import_tensorflow():
    probe = (
        "import argparse, sys; from recurrent_zoo.commands import tune; "
        "tune.add_arguments(argparse.ArgumentParser()); "
        "print(sorted({'tensorflow', 'keras_tuner'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_worker_may_not_overwrite_the_search(monkeypatch, tmp_path):
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    data = TextClassificationData(["good", "bad"], np.array([1, 0]), ("neg", "pos"))
    with pytest.raises(ValueError, match="only the chief may overwrite"):
        run_search("sentiment", data, data, tmp_path, overwrite=True)


@pytest.mark.slow  # a (tiny) search: about 15 s
def test_tunes_on_a_users_own_table(tmp_path, capsys):
    """`--corpus table`: a search over a small CSV of the user's own labels."""

    rng = np.random.default_rng(0)
    words = {
        "spam": ["win", "prize", "free", "cash"],
        "ham": ["lunch", "meet", "notes"],
    }
    path = tmp_path / "mail.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(60):
            label = ("spam", "ham")[i % 2]
            writer.writerow([" ".join(rng.choice(words[label], size=6)), label])
    tiny = [a for a in TINY if a != "--train-per-class"][1:]  # every row
    code = main(
        ["tune", "sentiment", "--data", str(path), "--corpus", "table",
         "--directory", str(tmp_path / "search"), "--max-trials", "1",
         "--epochs", "1", "--no-retrain", "--quiet", *tiny]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    project = tmp_path / "search" / "sentiment_hyperband"
    settings = json.loads((project / "search_settings.json").read_text())
    assert settings["class_names"] == ["ham", "spam"]  # the table's, sorted
    trials = json.loads((project / "trials.json").read_text())
    assert [t["status"] for t in trials["trials"]] == ["COMPLETED"]
    assert "48 training and 12 validation" in capsys.readouterr().out
