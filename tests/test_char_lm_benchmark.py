"""`benchmarks/char_lm.py`: compressors' bits per character, its results layout."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import char_lm  # noqa: E402


@pytest.mark.parametrize("command", list(char_lm.COMPRESSORS.values()))
def test_compressed_bits_match_the_compressor_output(command):
    payload = ("the cat sat on the mat. " * 400).encode()
    bits = char_lm.compressed_bits(command, payload)
    if bits is None:
        pytest.skip(f"{command[0]} is not installed")
    out = subprocess.run(command, input=payload, capture_output=True, check=True)
    assert bits == 8 * len(out.stdout)
    # A repetitive text compresses far below 8 bits per character.
    assert bits / len(payload) < 0.5


def test_a_missing_compressor_is_left_out():
    assert char_lm.compressed_bits(["no-such-compressor-here"], b"abc") is None


def test_bits_per_character_count_code_points_not_bytes(monkeypatch):
    monkeypatch.setattr(char_lm, "COMPRESSORS", {"cat": ["cat"]})
    texts = ["héllo", "wörld"]  # 10 characters, 12 bytes, and one newline
    (row,) = char_lm.compressor_rows(texts)
    assert row["bits_per_character"] == pytest.approx(8 * 13 / 10)


@pytest.mark.parametrize(
    "characters, policy, labelled",
    [
        (1000, None, "float32"),  # older runs record no policy: float32
        (1000, "float32", "float32"),
        (400, "float32", "run"),  # the run scored part of the test
        (1000, "mixed_bfloat16", "run"),  # scored in bfloat16
    ],
)
def test_run_facts_names_a_score_that_is_not_the_float32_models(
    tmp_path, characters, policy, labelled
):
    arguments = {} if policy is None else {"dtype_policy": policy}
    test = {"bits_per_character": 1.7, "characters": characters, "documents": 9}
    metrics = {
        "test": test,
        "arguments": arguments,
        "train_seconds": 12.34,
        "command": "recurrent-zoo train char_lm",
        "machine": "a CPU",
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    facts = char_lm.run_facts(tmp_path / "model.keras", 1000)
    assert facts["train_seconds"] == 12.3
    if labelled == "float32":
        assert facts["float32_test_bits_per_character"] == 1.7
        assert "run_test" not in facts
    else:
        assert facts["run_test"] == {**test, "dtype_policy": policy or "float32"}
        assert "float32_test_bits_per_character" not in facts
    assert char_lm.run_facts(tmp_path / "none" / "model.keras", 1000) == {}


@pytest.mark.slow
def test_quick_run_writes_matching_json_and_markdown(shared_data, tmp_path):
    assert (
        char_lm.main(
            ["--data", str(shared_data), "--quick", "--results", str(tmp_path)]
        )
        == 0
    )
    results = json.loads((tmp_path / "char_lm.json").read_text())
    assert results["documents"] == 200 and results["characters"] > 100_000
    markdown = (tmp_path / "char_lm.md").read_text()
    for row in results["rows"]:
        assert (
            f"| {row['method']} | compressor | {row['bits_per_character']:.3f} |"
            in markdown
        )
        assert 1.0 < row["bits_per_character"] < 4.0
