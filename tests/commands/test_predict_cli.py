"""`recurrent-zoo export` and `recurrent-zoo predict`."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recurrent_zoo.cli import main
from recurrent_zoo.export import export_saved_model
from recurrent_zoo.models import get

TEXTS = [
    "a good film with a great cast",
    "a bad film, terrible and dull",
    "great acting, great story",
    "dull dull dull and bad",
]


@pytest.fixture(scope="module")
def model():
    model = get(
        "sentiment",
        units=(4,),
        embedding_dim=8,
        vocabulary_size=100,
        sequence_length=20,
        attention_units=4,
    )
    model.adapt(TEXTS)
    model.compile(learning_rate=3e-2)
    model.fit(
        np.asarray(TEXTS * 4, dtype=object),
        np.array([1, 0, 1, 0] * 4),
        epochs=2,
        verbose=0,
    )
    return model


@pytest.fixture(scope="module")
def keras_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("export") / "sentiment"
    export_saved_model(model, base)
    return base


class _Stdin:
    """A piped (not interactive) stdin holding `data`."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def _json_rows(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_export_command_writes_versions_and_never_overwrites(
    keras_file, tmp_path, capsys
):
    out = tmp_path / "served"
    assert main(["export", str(keras_file), str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "1")
    assert main(["export", str(keras_file), str(out), "--version", "1"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    stamp = (out / "1" / "saved_model.pb").stat().st_mtime_ns
    assert (
        main(["export", str(keras_file), str(out), "--version", "1", "--overwrite"])
        == 0
    )
    assert (out / "1" / "saved_model.pb").stat().st_mtime_ns != stamp
    assert sorted(os.listdir(out)) == ["1"]


def test_export_command_rejects_a_missing_model(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.keras"), str(tmp_path / "out")]) == 2
    assert "no model file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_keras_file_and_saved_model_predict_alike(model, keras_file, exported, capsys):
    expected = model.predict_proba(TEXTS)
    for source in (keras_file, exported, exported / "1"):
        assert main(["predict", "--json", str(source), *TEXTS]) == 0
        rows = _json_rows(capsys)
        assert [r["index"] for r in rows] == [0, 1, 2, 3]
        got = np.array(
            [[r["probabilities"]["neg"], r["probabilities"]["pos"]] for r in rows]
        )
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert [r["label"] for r in rows] == model.predict_labels(TEXTS)
        for r in rows:
            assert r["probability"] == max(r["probabilities"].values())
            assert r["label_id"] == ("neg", "pos").index(r["label"])


def test_stdin_lines_with_bytes_that_are_not_utf8(
    model, keras_file, monkeypatch, capsys
):
    lines = [b"a good film", b"\xff\xfe terrible \xc3 film", b"", b"great"]
    monkeypatch.setattr(sys, "stdin", _Stdin(b"\n".join(lines) + b"\n"))
    assert main(["predict", str(keras_file)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(lines)  # one output line per input line, blanks too
    repaired = [line.decode("utf-8", "replace") for line in lines]
    expected = model.predict_proba(repaired)
    for (label, probability, preview), p, text in zip(
        rows, expected, repaired, strict=True
    ):
        assert label == ("neg", "pos")[p.argmax()]
        assert float(probability) == pytest.approx(p.max(), abs=1e-4)
        assert preview == text.strip()
    assert "\ufffd" in rows[1][2]


def test_argument_that_is_not_utf8(model, exported, capsys):
    # How Python hands over a command-line argument holding the byte 0xff.
    argument = os.fsdecode(b"\xff great film")
    assert main(["predict", str(exported), argument, "--json"]) == 0
    (row,) = _json_rows(capsys)
    expected = model.predict_proba(["\ufffd great film"])[0]
    assert row["probabilities"]["pos"] == pytest.approx(expected[1], abs=1e-5)


def test_jsonl_input_with_top_k(model, exported, tmp_path, capsys):
    path = tmp_path / "reviews.jsonl"
    records = [{"text": t, "id": i} for i, t in enumerate(TEXTS)]
    records.insert(2, {"text": "très bon film 🎬 — 素晴らしい"})
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n"
    )
    assert (
        main(["predict", str(exported), "--jsonl", str(path), "--json", "--top-k", "5"])
        == 0
    )
    rows = _json_rows(capsys)
    assert len(rows) == 5
    expected = model.predict_proba([r["text"] for r in records])
    for row, p in zip(rows, expected, strict=True):
        # k is capped at the number of classes, best first.
        assert [c["label"] for c in row["top_k"]] == [
            ("neg", "pos")[i] for i in np.argsort(-p)
        ]
        assert row["top_k"][0]["probability"] == pytest.approx(p.max(), abs=1e-5)


def test_text_output_with_top_k(exported, capsys):
    assert main(["predict", "--top-k", "2", str(exported), "great film"]) == 0
    label, probability, top, preview = capsys.readouterr().out.rstrip("\n").split("\t")
    first, second = top.split(" ")
    assert first == f"{label}={probability}"
    assert second.split("=")[0] == ({"neg", "pos"} - {label}).pop()
    assert preview == "great film"


def test_long_text_preview_is_cut(exported, capsys):
    text = "great film " * 500
    assert main(["predict", str(exported), text]) == 0
    preview = capsys.readouterr().out.rstrip("\n").split("\t")[-1]
    assert len(preview) == 60 and preview.endswith("…")


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda m, f: ["predict", str(f.parent / "missing"), "x"], "no model"),
        (lambda m, f: ["predict", str(m), "--jsonl", str(f)], "{f}:2: not JSON"),
        (lambda m, f: ["predict", str(m), "also text", "--jsonl", str(f)], "not both"),
        (lambda m, f: ["predict", str(f.parent), "x"], "no SavedModel"),
        (lambda m, f: ["predict", str(m), "x", "--top-k", "-1"], "--top-k"),
    ],
    ids=["missing-model", "bad-jsonl", "args-and-jsonl", "not-a-model", "bad-top-k"],
)
def test_bad_invocations_fail_clearly(exported, tmp_path, capsys, make_args, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": unquoted}\n')
    assert main(make_args(exported, bad)) == 2
    assert message.replace("{f}", str(bad)) in capsys.readouterr().err


def test_console_script_reads_piped_stdin(exported, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "recurrent_zoo.cli",
            "predict",
            str(exported),
            "-",
            "--json",
        ],
        input=b"a good film\n\xffdull\n",
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(rows) == 2
    assert all(0.0 <= r["probability"] <= 1.0 for r in rows)
