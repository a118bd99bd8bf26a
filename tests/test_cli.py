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


def test_the_cli_lists_the_removable_parts_the_loader_knows():
    # Kept apart so that `--help` loads no data package; they must agree.
    from recurrent_zoo.commands.common import REMOVABLE
    from recurrent_zoo.data.newsgroups import REMOVABLE as LOADER_REMOVABLE

    assert REMOVABLE == LOADER_REMOVABLE
