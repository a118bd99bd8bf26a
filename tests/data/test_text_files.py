"""`load_text_folder` and `load_table` on small corpora written in tmp_path."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from recurrent_zoo.data import TextClassificationData, load_table, load_text_folder


def _pairs(data: TextClassificationData) -> Counter:
    names = data.class_names
    return Counter((t, names[y]) for t, y in zip(data.texts, data.labels, strict=True))


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
    return root


# --- one folder per class ----------------------------------------------------------


@pytest.fixture
def imdb_like(tmp_path: Path) -> Path:
    return _tree(
        tmp_path / "train",
        {
            "neg/10": "neg ten",
            "neg/9": "neg nine",
            "neg/100.txt": "neg hundred",
            "neg/.DS_Store": "hidden",
            "pos/a.txt": "pos a",
            "pos/sub/b.TXT": "pos nested b",
            "pos/notes.md": "pos markdown",
            "unsup/0.txt": "unlabeled",
        },
    )


def test_folder_classes_sorted_or_picked(imdb_like):
    every = load_text_folder(imdb_like)
    assert every.class_names == ("neg", "pos", "unsup")
    assert len(every) == 7 and "hidden" not in every.texts
    picked = load_text_folder(imdb_like, class_names=["pos", "neg"], seed=None)
    assert picked.class_names == ("pos", "neg")  # the given order is label order
    assert "unlabeled" not in picked.texts
    # seed=None: class order, then path order with all-digit names by value.
    assert picked.texts == [
        "pos a",
        "pos markdown",
        "pos nested b",
        "neg nine",
        "neg ten",
        "neg hundred",
    ]
    assert picked.labels.tolist() == [0, 0, 0, 1, 1, 1]
    shuffled = load_text_folder(imdb_like, class_names=["pos", "neg"], seed=3)
    assert _pairs(shuffled) == _pairs(picked) and shuffled.texts != picked.texts


def test_folder_extensions_and_max_per_class(imdb_like):
    data = load_text_folder(imdb_like, ["neg", "pos"], extensions=["txt"], seed=None)
    assert data.texts == ["neg hundred", "pos a", "pos nested b"]
    data = load_text_folder(imdb_like, ["neg", "pos"], max_per_class=2, seed=None)
    assert data.texts == ["neg nine", "neg ten", "pos a", "pos markdown"]


def test_folder_errors(tmp_path, imdb_like):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_text_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class folders"):
        load_text_folder(_tree(tmp_path / "flat", {"a.txt": "x"}))
    with pytest.raises(ValueError, match=r"classes \['spam'\]"):
        load_text_folder(imdb_like, class_names=["neg", "spam"])
    with pytest.raises(ValueError, match=r"neg holds no files ending with \['.md'\]"):
        load_text_folder(imdb_like, extensions=[".md"])
    (imdb_like / "empty").mkdir()
    with pytest.raises(ValueError, match=f"class folder {imdb_like / 'empty'} holds"):
        load_text_folder(imdb_like)
    with pytest.raises(ValueError, match="max_per_class"):
        load_text_folder(imdb_like, max_per_class=0)


def test_folder_latin1_files_are_counted(tmp_path):
    latin1 = "caf\u00e9".encode("latin-1")
    root = _tree(tmp_path, {"a/1": latin1, "a/2": "ok", "b/1": "ok"})
    with pytest.warns(RuntimeWarning, match=r"1 of 3 files in .* decoded as latin-1"):
        data = load_text_folder(root)
    assert "caf\u00e9" in data.texts


# --- tables ----------------------------------------------------------------------


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_csv_string_labels_quotes_and_bom(tmp_path):
    table = _write(
        tmp_path / "t.csv",
        '\ufefftext,label\n"Great, really",pos\n"two\nlines",neg\nmeh,neg\n',
    )
    data = load_table(table)
    assert data.class_names == ("neg", "pos")
    assert data.texts == ["Great, really", "two\nlines", "meh"]
    assert data.labels.tolist() == [1, 0, 0]
    given = load_table(table, class_names=["pos", "neg", "unused"], max_per_class=1)
    assert given.class_names == ("pos", "neg", "unused")
    assert given.texts == ["Great, really", "two\nlines"]
    shuffled = load_table(table, seed=0)
    assert _pairs(shuffled) == _pairs(data)


def test_csv_integer_labels(tmp_path):
    table = _write(tmp_path / "t.csv", "body,y\na,2\nb,0\nc,2\n")
    data = load_table(table, text_column="body", label_column="y")
    assert data.class_names == ("0", "1", "2") and data.labels.tolist() == [2, 0, 2]
    named = load_table(table, "body", "y", class_names=["x", "y", "z"])
    assert [named.class_names[i] for i in named.labels] == ["z", "x", "z"]
    with pytest.raises(ValueError, match=r"t\.csv, line 2: label 2 outside 0\.\.1"):
        load_table(table, "body", "y", class_names=["x", "y"])


def test_jsonl_and_json_array(tmp_path):
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y", "extra": 1}]
    lines = _write(tmp_path / "t.jsonl", "\n".join(map(json.dumps, rows)) + "\n\n")
    array = _write(tmp_path / "t.json", json.dumps(rows, indent=2))
    json_lines = _write(tmp_path / "l.json", "\n".join(map(json.dumps, rows)))
    for path in (lines, array, json_lines):
        data = load_table(path)
        assert data.texts == ["a", "b"] and data.class_names == ("x", "y")
    crlf = _write(tmp_path / "c.jsonl", '{"text": "a\u2028b", "label": "x"}\r\n')
    assert load_table(crlf).texts == ["a\u2028b"]
    ints = _write(tmp_path / "i.jsonl", '{"text": "a", "label": 1}\n')
    assert load_table(ints).class_names == ("0", "1")


A0 = '{"text": "a", "label": 0}\n'
NOT_INT = "line 1: label must be a string or integer"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.csv", "", r"e\.csv is empty"),
        ("e.jsonl", "\n  \n", r"e\.jsonl is empty"),
        ("h.csv", "text,label\n", r"h\.csv has no rows"),
        ("c.csv", "body,label\nx,1\n", r"c\.csv, line 1: no column 'text'"),
        ("m.jsonl", A0 + '{"text": "b"}\n', r"m\.jsonl, line 2: missing 'label'"),
        ("b.jsonl", A0 + '\n{"text": "b",\n', r"b\.jsonl, line 3: malformed JSON"),
        ("o.jsonl", '["a", 0]\n', r"o\.jsonl, line 1: expected a JSON object"),
        ("f.jsonl", '{"text": "a", "label": 1.0}', NOT_INT),
        ("t.jsonl", '{"text": "a", "label": true}', NOT_INT),
        ("n.jsonl", '{"text": 5, "label": "x"}', "line 1: text must be a string"),
        ("x.jsonl", '{"text": "", "label": "x"}\n' + A0, "line 2: label 0 is a int"),
        ("w.csv", "text,label\na,x\nb,y,extra\n", r"w\.csv, line 3: more fields"),
        ("s.csv", 'text,label\n"two\nlines",x\nb,\n', r"line 4: empty 'label'"),
        ("a.json", '[{"text": "a", "label": 0}, 3]', r"a\.json, record 2: expected"),
        ("t.tsv", "text\tlabel\n", "unsupported table type"),
    ],
)
def test_table_errors_name_file_and_line(tmp_path, name, content, message):
    with pytest.raises(ValueError, match=message):
        load_table(_write(tmp_path / name, content))


def test_table_unknown_label_and_missing_file(tmp_path):
    table = _write(tmp_path / "u.csv", 'text,label\n"a\nb",neg\nc,maybe\n')
    with pytest.raises(ValueError, match=r"u\.csv, line 4: unknown label 'maybe'"):
        load_table(table, class_names=["neg", "pos"])
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        load_table(tmp_path / "gone.csv")


def test_latin1_table_is_counted(tmp_path):
    table = _write(tmp_path / "l.csv", "text,label\ncaf\u00e9,x\n".encode("latin-1"))
    with pytest.warns(RuntimeWarning, match=r"1 of 1 tables in .*l\.csv"):
        data = load_table(table)
    assert data.texts == ["caf\u00e9"] and data.labels.dtype == np.int32
