"""`load_corpus`: names to loaders, and split layouts of folders and tables."""

from pathlib import Path

import pytest

import recurrent_zoo.data.registry as registry
from recurrent_zoo.data import CORPORA, load_corpus, load_unlabeled


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def test_corpora_and_unknown_names():
    assert CORPORA == ("imdb", "20newsgroups", "folder", "table", "text", "series")
    # Plain text has no labels: it serves language models, never classifiers;
    # a time series serves forecasters.
    with pytest.raises(ValueError, match="'text' corpus is plain text"):
        load_corpus("text", "/data")
    with pytest.raises(ValueError, match="'series' corpus is a time series"):
        load_corpus("series", "co2")
    with pytest.raises(ValueError, match=r"unknown corpus 'sst2'.*'20newsgroups'"):
        load_corpus("sst2", None)
    for corpus in ("folder", "table"):
        with pytest.raises(ValueError, match=f"{corpus!r} corpus needs a data path"):
            load_corpus(corpus, None)


@pytest.mark.parametrize(
    ("corpus", "loader"), [("imdb", "load_imdb"), ("20newsgroups", "load_newsgroups")]
)
def test_named_corpora_dispatch_with_all_arguments(monkeypatch, corpus, loader):
    calls = []
    monkeypatch.setattr(registry, loader, lambda *a, **k: calls.append((a, k)) or "x")
    got = load_corpus(corpus, "/data", "test", max_per_class=5, seed=2)
    assert got == "x"
    assert calls == [(("/data", "test"), {"max_per_class": 5, "seed": 2})]


def test_imdb_tree_through_load_corpus(tmp_path):
    names = [f"aclImdb/train/{c}/{i}_1.txt" for c in ("neg", "pos") for i in range(3)]
    _tree(tmp_path, {name: name for name in names})
    data = load_corpus("imdb", tmp_path, "train", max_per_class=None, seed=0)
    rest, held = data.split(1 / 3, seed=0)  # the training command's contract
    assert len(rest) == 4 and sorted(held.labels.tolist()) == [0, 1]


def test_folder_with_split_subfolders(tmp_path):
    names = [f"{s}/{c}/{i}" for s in ("train", "test") for c in "ab" for i in range(2)]
    root = _tree(tmp_path, {name: name.replace("/", " ") for name in names})
    test = load_corpus("folder", root, "test", seed=None, max_per_class=1)
    assert test.texts == ["test a 0", "test b 0"] and test.class_names == ("a", "b")
    with pytest.raises(ValueError, match=r"no 'valid' folder .*\['train', 'test'\]"):
        load_corpus("folder", root, "valid")


def test_flat_folder_is_only_the_train_split(tmp_path):
    root = _tree(tmp_path, {"neg/1": "bad", "pos/1": "good"})
    data = load_corpus("folder", str(root), "train", class_names=["neg", "pos"])
    assert sorted(data.texts) == ["bad", "good"]
    with pytest.raises(ValueError, match="only the train split"):
        load_corpus("folder", root, "test")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_corpus("folder", tmp_path / "nowhere", "train")


def test_table_file_and_folder(tmp_path):
    single = _tree(tmp_path / "one", {"reviews.csv": "text,label\na,x\nb,y\n"})
    data = load_corpus("table", single / "reviews.csv", "train", seed=None)
    assert data.texts == ["a", "b"]
    with pytest.raises(ValueError, match="only the train split"):
        load_corpus("table", single / "reviews.csv", "test")
    tables = _tree(
        tmp_path / "many",
        {
            "train.csv": "body,label\na,x\nb,y\n",
            "test.jsonl": '{"body": "c", "label": "y"}\n',
        },
    )
    test = load_corpus("table", tables, "test", text_column="body", seed=None)
    assert test.texts == ["c"] and test.class_names == ("y",)
    named = load_corpus("table", tables / "test.jsonl", "test", text_column="body")
    assert named.texts == ["c"]  # a file named after the split serves it
    with pytest.raises(ValueError, match=r"exactly one of validation\.csv"):
        load_corpus("table", tables, "validation")
    (tables / "train.json").write_text("[]")
    with pytest.raises(ValueError, match=r"found \['train\.csv', 'train\.json'\]"):
        load_corpus("table", tables, "train")


def test_unknown_keyword_is_a_type_error(tmp_path):
    root = _tree(tmp_path, {"a/1": "x", "b/1": "y"})
    with pytest.raises(TypeError, match="remove"):
        load_corpus("folder", root, "train", remove=("headers",))


def test_only_imdb_has_unlabeled_texts(tmp_path):
    tree = tmp_path / "aclImdb" / "train" / "unsup"
    tree.mkdir(parents=True)
    (tree / "0_0.txt").write_text("Unlabeled.<br />Review.")
    assert load_unlabeled("imdb", tmp_path) == ["Unlabeled. Review."]
    assert load_unlabeled("20newsgroups", tmp_path) == []
    assert load_unlabeled("folder", tmp_path) == []
    with pytest.raises(ValueError, match="unknown corpus 'poems'"):
        load_unlabeled("poems", tmp_path)
