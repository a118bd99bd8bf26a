import json

import pytest

from recurrent_zoo.cli import build_parser, main


def test_demo_trains_on_real_reviews(shared_data, capsys):
    slice_args = ["--train-per-class", "40", "--test-per-class", "20", "--epochs", "1"]
    code = main(["demo", "--data", str(shared_data), *slice_args, "--quiet", "--json"])
    assert code == 0
    summary, payload = capsys.readouterr().out.strip().splitlines()[-2:]
    result = json.loads(payload)
    assert result["train_examples"] == 80 and result["test_examples"] == 40
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["train_loss"] > 0  # finite: NaN fails every comparison
    assert f"{result['test_accuracy']:.3f}" in summary


def test_unknown_command_is_rejected():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fly"])


def _choices(command: str, dest: str):
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    action = next(a for a in commands.choices[command]._actions if a.dest == dest)
    return tuple(action.choices)


def test_the_commands_offer_exactly_what_the_library_has():
    # One catalog, read by the commands before any heavy import and by the
    # modules that implement each name: a drift in either fails here.
    from recurrent_zoo import catalog
    from recurrent_zoo.data import CORPORA
    from recurrent_zoo.data.newsgroups import REMOVABLE
    from recurrent_zoo.models import ARCHITECTURES
    from recurrent_zoo.tuning import TUNERS

    assert {k: a.corpus for k, a in ARCHITECTURES.items()} == {
        k: entry.corpus for k, entry in catalog.TASKS.items()
    }
    assert CORPORA == catalog.CORPORA and REMOVABLE == catalog.REMOVABLE
    assert TUNERS == catalog.TUNERS
    from recurrent_zoo.training import tasks

    assert set(tasks.KINDS) == set(catalog.KINDS)
    assert {entry.kind for entry in catalog.TASKS.values()} <= set(catalog.KINDS)
    assert _choices("train", "monitor") == tuple(catalog.MONITORS)
    for name in catalog.TASKS:
        assert set(tasks.task_for(name).monitors) <= set(catalog.MONITORS)
    assert _choices("train", "task") == tuple(ARCHITECTURES)
    # The tuner searches classifiers' spaces: it offers exactly those.
    classifiers = tuple(
        name for name, entry in catalog.TASKS.items() if entry.kind == "classification"
    )
    assert (
        _choices("tune", "task") == classifiers == catalog.task_names("classification")
    )
    assert "char_lm" in ARCHITECTURES and "char_lm" not in classifiers
    for command in ("train", "tune"):
        assert _choices(command, "corpus") == CORPORA
    assert _choices("evaluate", "corpus") == CORPORA
    assert _choices("tune", "tuner") == TUNERS
