"""`load_imdb` against the real aclImdb archive and tiny trees built from it.

Ground truth comes from reading the archive directly with `tarfile` (the first
files of each folder, in member order) so the loader is checked against file
contents, folder names and the ratings in `<id>_<rating>.txt`, not only shapes.
"""

import io
import random
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from recurrent_zoo.data import TextClassificationData, load_imdb, load_imdb_unlabeled

N = 40  # reviews per class read from the real archive: keeps the file fast
FOLDERS = [(s, c) for s in ("test", "train") for c in ("neg", "pos")]


def _clean(raw: bytes) -> str:
    return raw.decode("utf-8").replace("<br />", " ")


def _texts_of(data: TextClassificationData, label: int) -> Counter:
    return Counter(
        t for t, y in zip(data.texts, data.labels, strict=True) if y == label
    )


def _pairs(data: TextClassificationData) -> Counter:
    return Counter(zip(data.texts, data.labels.tolist(), strict=True))


def _rating(filename: str) -> int:
    return int(filename.removesuffix(".txt").split("_")[1])


@pytest.fixture(scope="session")
def archive(shared_data: Path) -> Path:
    path = shared_data / "aclImdb.tar.gz"
    assert path.is_file(), f"{path} missing from the real-data folder"
    return path


@pytest.fixture(scope="session")
def reference(archive: Path) -> dict[tuple[str, str], list[tuple[str, bytes]]]:
    """First N (filename, bytes) of each labeled folder, in member order."""
    wanted = {f"aclImdb/{split}/{cls}": (split, cls) for split, cls in FOLDERS}
    found = {key: [] for key in FOLDERS}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            folder, _, name = member.name.rpartition("/")
            key = wanted.get(folder)
            if key is not None and member.isfile() and len(found[key]) < N:
                found[key].append((name, tar.extractfile(member).read()))
            if all(len(items) >= N for items in found.values()):
                break
    assert all(len(items) == N for items in found.values())
    return found


@pytest.fixture(scope="session")
def train_slice(shared_data: Path) -> TextClassificationData:
    return load_imdb(shared_data, split="train", max_per_class=N, seed=0)


@pytest.fixture(scope="session")
def test_slice(archive: Path) -> TextClassificationData:
    return load_imdb(archive, split="test", max_per_class=N, seed=0)


def _build_tree(root: Path, reference, per_folder: int = 3) -> Path:
    """A tiny extracted aclImdb tree, with an unsup file that must be ignored."""
    for (split, cls), items in reference.items():
        folder = root / "aclImdb" / split / cls
        folder.mkdir(parents=True)
        for name, raw in items[:per_folder]:
            (folder / name).write_bytes(raw)
    unsup = root / "aclImdb" / "train" / "unsup"
    unsup.mkdir()
    (unsup / "0_0.txt").write_text("UNSUP review that must never be labeled.")
    (root / "aclImdb" / "README").write_text("not a review")
    return root / "aclImdb"


def _pack(tree: Path, target: Path, shuffle_members: bool = False) -> Path:
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    if shuffle_members:  # the loader must not depend on archive member order
        random.Random(0).shuffle(files)
    with tarfile.open(target, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(tree.parent)))
    return target


# --- the real archive ---------------------------------------------------------


@pytest.mark.parametrize("slice_name", ["train_slice", "test_slice"])
def test_slice_counts_and_labels_match_folders(slice_name, reference, request):
    data = request.getfixturevalue(slice_name)
    split = slice_name.removesuffix("_slice")
    assert data.class_names == ("neg", "pos")
    assert len(data) == 2 * N and data.labels.dtype == np.int32
    assert np.bincount(data.labels).tolist() == [N, N]
    for label, cls in enumerate(data.class_names):
        expected = reference[(split, cls)]
        # The subset is the first N files in archive order, texts unchanged
        # apart from <br /> (duplicate reviews exist, hence a multiset).
        assert _texts_of(data, label) == Counter(_clean(raw) for _, raw in expected)
        # aclImdb/README: neg reviews are rated <= 4, pos reviews >= 7.
        ratings = [_rating(name) for name, _ in expected]
        assert all(r >= 7 for r in ratings) if cls == "pos" else max(ratings) <= 4


def test_real_texts_are_clean_nonempty_and_shuffled(train_slice, reference):
    assert any(b"<br />" in raw for _, raw in reference[("train", "pos")])
    assert all(text.strip() for text in train_slice.texts)
    assert not any("<br" in text.lower() for text in train_slice.texts)
    # Shuffled: both classes appear in the first half of the slice.
    assert set(train_slice.labels[:N].tolist()) == {0, 1}


def test_splits_are_disjoint(train_slice, test_slice):
    assert not set(train_slice.texts) & set(test_slice.texts)


def test_seed_fixes_order_not_subset(archive, test_slice):
    again = load_imdb(archive, split="test", max_per_class=N, seed=0)
    assert again.texts == test_slice.texts
    np.testing.assert_array_equal(again.labels, test_slice.labels)
    other = load_imdb(archive, split="test", max_per_class=N, seed=1)
    assert other.texts != test_slice.texts
    assert _pairs(other) == _pairs(test_slice)


# --- tiny trees built from real files ------------------------------------------


def test_folder_source_reads_the_same_files(tmp_path, reference):
    tree = _build_tree(tmp_path, reference)
    for source in (tree, tmp_path, str(tmp_path)):  # aclImdb folder or its parent
        data = load_imdb(source, split="test", seed=3)
        assert len(data) == 6
        for label, cls in enumerate(("neg", "pos")):
            files = sorted((tree / "test" / cls).iterdir())
            expected = Counter(_clean(p.read_bytes()) for p in files)
            assert _texts_of(data, label) == expected
    train = load_imdb(tree, split="train")
    assert len(train) == 6 and not any("UNSUP" in t for t in train.texts)


def test_archive_and_folder_agree(tmp_path, reference):
    tree = _build_tree(tmp_path / "x", reference)
    shuffled = _pack(tree, tmp_path / "shuffled.tar.gz", shuffle_members=True)
    packed = _pack(tree, tmp_path / "aclImdb.tar.gz")  # sorted, like the original
    # A full read ignores member order; a capped read takes the first N members,
    # which equal the first N names only when the archive is sorted.
    cases = [
        (shuffled, {}),
        (packed, {}),
        (tmp_path, {}),
        (packed, {"max_per_class": 2}),
    ]
    for split in ("train", "test"):
        for source, kwargs in cases:
            from_folder = load_imdb(tree, split=split, seed=5, **kwargs)
            from_archive = load_imdb(source, split=split, seed=5, **kwargs)
            assert from_archive.texts == from_folder.texts
            assert from_archive.labels.tolist() == from_folder.labels.tolist()


def test_capped_archive_read_stops_before_unsup(tmp_path, reference):
    tree = _build_tree(tmp_path / "x", reference)
    # Incompressible unsup data at the end of a sorted archive, then cut off:
    # only a read that stops once both classes are full can succeed.
    (tree / "train" / "unsup" / "1_0.txt").write_bytes(
        np.random.default_rng(0).bytes(300_000)
    )
    packed = _pack(tree, tmp_path / "aclImdb.tar.gz")
    packed.write_bytes(packed.read_bytes()[:-100_000])
    data = load_imdb(packed, split="train", max_per_class=3)
    assert np.bincount(data.labels).tolist() == [3, 3]
    with pytest.raises(ValueError, match=r"aclImdb\.tar\.gz .*truncated or corrupt"):
        load_imdb(packed, split="train")


def test_max_per_class_keeps_first_files_by_name(tmp_path, reference):
    tree = _build_tree(tmp_path, reference)
    data = load_imdb(tree, split="train", max_per_class=2)
    for label, cls in enumerate(("neg", "pos")):
        first = [_clean(raw) for _, raw in reference[("train", cls)][:2]]
        assert _texts_of(data, label) == Counter(first)


def test_clean_false_keeps_markup(tmp_path):
    tree = tmp_path / "aclImdb" / "test"
    for cls, text in (("neg", "bad.<br /><br />Awful."), ("pos", "Good<BR>fun")):
        (tree / cls).mkdir(parents=True)
        (tree / cls / "0_1.txt").write_text(text)
    raw = load_imdb(tmp_path, split="test", clean=False)
    assert sorted(raw.texts) == ["Good<BR>fun", "bad.<br /><br />Awful."]
    cleaned = load_imdb(tmp_path, split="test")
    assert sorted(cleaned.texts) == ["Good fun", "bad.  Awful."]


def test_invalid_utf8_is_counted_and_warned(tmp_path):
    tree = tmp_path / "aclImdb" / "train"
    for cls in ("neg", "pos"):
        (tree / cls).mkdir(parents=True)
        (tree / cls / "0_1.txt").write_text("fine")
    (tree / "pos" / "1_9.txt").write_bytes(b"caf\xe9 latin-1")
    with pytest.warns(RuntimeWarning, match=r"1 of 3 IMDB reviews .* not valid UTF-8"):
        data = load_imdb(tmp_path, split="train")
    assert "caf\ufffd latin-1" in data.texts


# --- errors -----------------------------------------------------------------------


@pytest.mark.parametrize("split", ["validation", "unsup", "Train"])
def test_bad_split(split):
    with pytest.raises(ValueError, match=repr(split)):
        load_imdb("/nonexistent", split=split)


def test_bad_max_per_class():
    with pytest.raises(ValueError, match="max_per_class"):
        load_imdb("/nonexistent", max_per_class=0)


def test_missing_source(tmp_path):
    missing = tmp_path / "nope" / "aclImdb.tar.gz"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_imdb(missing)
    with pytest.raises(FileNotFoundError, match="no aclImdb.tar.gz"):
        load_imdb(tmp_path)  # exists, but holds neither archive nor tree


def test_empty_class_folder(tmp_path, reference):
    tree = _build_tree(tmp_path, reference)
    for path in (tree / "train" / "pos").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="aclImdb/train/pos"):
        load_imdb(tree, split="train")
    packed = _pack(tree, tmp_path / "aclImdb.tar.gz")
    with pytest.raises(ValueError, match="aclImdb/train/pos"):
        load_imdb(packed, split="train")


def test_archive_without_expected_folders(tmp_path):
    target = tmp_path / "other.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        info = tarfile.TarInfo("aclImdb/README")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(ValueError, match="aclImdb/test/neg"):
        load_imdb(target, split="test")
    not_tar = tmp_path / "plain.txt"
    not_tar.write_text("not an archive")
    with pytest.raises(ValueError, match="plain.txt"):
        load_imdb(not_tar)


# --- tensorflow_datasets path and the tf.data view ------------------------------


def test_tfds_path_converts_to_the_same_structure(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = []

    def fake_load(name, **kwargs):
        calls.append((name, kwargs))
        texts = [b"great<br />film", b"dull", b"fine", b"awful", b"superb"]
        labels = np.array([1, 0, 1, 0, 1], dtype=np.int64)  # TFDS: neg=0, pos=1
        return tf.data.Dataset.from_tensor_slices((texts, labels))

    monkeypatch.setattr(tfds, "load", fake_load)
    data = load_imdb(None, split="test", max_per_class=2, seed=0)
    assert calls == [("imdb_reviews", {"split": "test", "as_supervised": True})]
    assert data.class_names == ("neg", "pos") and data.labels.dtype == np.int32
    assert _pairs(data) == Counter(
        [("awful", 0), ("dull", 0), ("fine", 1), ("great film", 1)]
    )

    monkeypatch.setattr(
        tfds, "load", lambda *a, **k: fake_load(*a, **k).map(lambda x, y: (x, y + 1))
    )
    with pytest.raises(ValueError, match="unexpected label 2"):
        load_imdb(None, split="train")


def test_to_dataset_batches_all_pairs(tmp_path, reference):
    data = load_imdb(_build_tree(tmp_path, reference), split="train")
    ds = data.to_dataset(batch_size=4, shuffle=False)
    batches = list(ds.as_numpy_iterator())
    assert [len(x) for x, _ in batches] == [4, 2]
    assert batches[0][1].dtype == np.int32
    texts = [t.decode("utf-8") for x, _ in batches for t in x]
    labels = [int(y) for _, ys in batches for y in ys]
    assert texts == data.texts and labels == data.labels.tolist()
    shuffled = data.to_dataset(batch_size=6, shuffle=True, seed=0)
    (x, y), *_ = shuffled.as_numpy_iterator()
    got = TextClassificationData([t.decode() for t in x], y, data.class_names)
    assert _pairs(got) == _pairs(data)
    with pytest.raises(ValueError, match="batch_size"):
        data.to_dataset(batch_size=0)


def test_data_is_read_only(train_slice):
    with pytest.raises(ValueError):
        train_slice.labels[0] = 1
    with pytest.raises(AttributeError):
        train_slice.texts = []


# --- train/unsup, for pretraining only ----------------------------------------


def test_unlabeled_reads_only_unsup_from_folder_and_archive(tmp_path, reference):
    tree = _build_tree(tmp_path / "x", reference)
    (tree / "train" / "unsup" / "10_0.txt").write_text("Second.<br />Unlabeled.")
    packed = _pack(tree, tmp_path / "aclImdb.tar.gz", shuffle_members=True)
    expected = ["UNSUP review that must never be labeled.", "Second. Unlabeled."]
    assert load_imdb_unlabeled(tree) == expected  # file-name order: 0_0, 10_0
    assert load_imdb_unlabeled(packed) == expected
    assert load_imdb_unlabeled(tree, max_texts=1) == expected[:1]
    assert load_imdb_unlabeled(tree, clean=False)[1] == "Second.<br />Unlabeled."
    labeled = load_imdb(tree, split="train").texts + load_imdb(tree, "test").texts
    assert not set(expected) & set(labeled)


def test_unlabeled_real_archive_slice(archive):
    texts = load_imdb_unlabeled(archive, max_texts=5)
    assert len(texts) == 5 and all(len(t.split()) > 5 for t in texts)
    assert not any("<br" in t for t in texts)


def test_unlabeled_errors(tmp_path, reference):
    with pytest.raises(ValueError, match="max_texts must be positive, got 0"):
        load_imdb_unlabeled(tmp_path, max_texts=0)
    tree = _build_tree(tmp_path / "x", reference)
    (tree / "train" / "unsup" / "0_0.txt").unlink()
    with pytest.raises(ValueError, match=r"no review files .*train/unsup"):
        load_imdb_unlabeled(tree)
