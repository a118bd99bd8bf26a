"""`load_newsgroups` against the real bydate archive and tiny archives built here.

Ground truth for the real archive comes from reading it directly with
`tarfile`; scikit-learn's `strip_newsgroup_*` functions are the oracle for
`remove`, since the option promises their meaning.
"""

import io
import random
import tarfile
import warnings
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pytest

from recurrent_zoo.data import TextClassificationData, load_newsgroups
from recurrent_zoo.data.newsgroups import (
    NEWSGROUPS,
    ORIGIN,
    strip_footer,
    strip_header,
    strip_quotes,
)
from recurrent_zoo.data.text_data import name_key

ALL = ("headers", "footers", "quotes")


def _by_class(data: TextClassificationData) -> dict[str, Counter]:
    found = {name: Counter() for name in data.class_names}
    for text, label in zip(data.texts, data.labels.tolist(), strict=True):
        found[data.class_names[label]][text] += 1
    return found


def _same(a: TextClassificationData, b: TextClassificationData) -> None:
    assert a.class_names == b.class_names
    assert a.texts == b.texts
    assert a.labels.tolist() == b.labels.tolist()


# --- the real archive -------------------------------------------------------------


@pytest.fixture(scope="session")
def archive(shared_data: Path) -> Path:
    path = shared_data / "20news-bydate.tar.gz"
    assert path.is_file(), f"{path} missing from the real-data folder"
    return path


@pytest.fixture(scope="session")
def reference(archive: Path) -> dict[str, list[tuple[str, bytes]]]:
    """Every train post, per newsgroup, in archive member order."""
    found: dict[str, list[tuple[str, bytes]]] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if parts[0] == "20news-bydate-test":
                break  # the archive holds train, then test
            if member.isfile():
                payload = tar.extractfile(member).read()
                found.setdefault(parts[1], []).append((parts[2], payload))
    return found


@pytest.fixture(scope="session")
def train_slice(archive: Path) -> TextClassificationData:
    return load_newsgroups(archive, "train", max_per_class=3, seed=0)


def test_real_slice_keeps_lowest_ids_of_20_groups(train_slice, reference):
    assert train_slice.class_names == tuple(sorted(reference)) == NEWSGROUPS
    assert train_slice.class_names[0] == "alt.atheism"
    assert train_slice.class_names[-1] == "talk.religion.misc"
    assert np.bincount(train_slice.labels).tolist() == [3] * 20
    found = _by_class(train_slice)
    for group, files in reference.items():
        lowest = sorted(files, key=lambda item: name_key(item[0]))[:3]
        assert found[group] == Counter(raw.decode("utf-8") for _, raw in lowest)
    # Members are in string order, so the numeric choice differs from the
    # first three members here: 8514 < 9136 < 9137 < 10000.
    members = [name for name, _ in reference["comp.os.ms-windows.misc"][:3]]
    assert members == ["10000", "10001", "10002"]
    assert set(train_slice.labels[:20].tolist()) != {0}  # shuffled


def test_full_splits_have_the_published_counts(archive, reference):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # this copy is all UTF-8: no fallback
        train = load_newsgroups(archive, "train", seed=1)
        test = load_newsgroups(archive.parent, "test", seed=1)
    assert len(train) == 11314 and len(test) == 7532
    assert train.class_names == test.class_names == NEWSGROUPS
    assert np.bincount(train.labels).tolist() == [len(reference[g]) for g in NEWSGROUPS]
    assert np.bincount(test.labels, minlength=20).min() > 200
    expected = {g: Counter(raw.decode() for _, raw in reference[g]) for g in NEWSGROUPS}
    assert _by_class(train) == expected
    assert not set(train.texts) & set(test.texts)


def test_strip_functions_match_sklearn_on_real_posts(reference):
    sk = pytest.importorskip("sklearn.datasets._twenty_newsgroups")
    posts = [raw.decode() for files in reference.values() for _, raw in files][::8]
    assert len(posts) > 1400
    for ours, theirs in [
        (strip_header, sk.strip_newsgroup_header),
        (strip_footer, sk.strip_newsgroup_footer),
        (strip_quotes, sk.strip_newsgroup_quoting),
    ]:
        changed = 0
        for post in posts:
            assert ours(post) == theirs(post), (ours.__name__, post[:300])
            changed += ours(post) != post
        assert changed > 100, ours.__name__  # the oracle saw real work


def test_remove_matches_sklearn_on_a_real_slice(archive, train_slice):
    sk = pytest.importorskip("sklearn.datasets._twenty_newsgroups")
    # Same subset and seed, so the same order: compare post by post.
    stripped = load_newsgroups(archive, "train", ["quotes", "headers", "footers"], 3)
    expected = [
        sk.strip_newsgroup_quoting(
            sk.strip_newsgroup_footer(sk.strip_newsgroup_header(text))
        )
        for text in train_slice.texts
    ]
    assert stripped.texts == expected
    assert stripped.labels.tolist() == train_slice.labels.tolist()
    assert not any(t.startswith("From:") for t in stripped.texts)


# --- tiny archives built here ---------------------------------------------------

IDS = {"train": ["10000", "8514", "9", "100"], "test": ["77", "123456"]}


def _post(group: str, split: str, post_id: str) -> bytes:
    return (
        f"From: someone@{group}\nSubject: post {post_id}\n\n"
        f"In article <1@x> bob writes:\n> quoted {group}\n"
        f"Body of {split} post {post_id} in {group}.\n\n--\nSig {post_id}\n"
    ).encode()


def _build_tree(root: Path) -> Path:
    for split, ids in IDS.items():
        for group in NEWSGROUPS:
            folder = root / f"20news-bydate-{split}" / group
            folder.mkdir(parents=True)
            for post_id in ids:
                (folder / post_id).write_bytes(_post(group, split, post_id))
    return root


def _pack(root: Path, target: Path, order: str = "real") -> Path:
    files = [p for p in root.rglob("*") if p.is_file()]
    if order == "shuffled":  # the loader must not depend on member order
        random.Random(0).shuffle(files)
    else:  # "real": train before test, string order inside, as the original
        files.sort(key=lambda p: ("test" in p.parent.parent.name, str(p)))
    with tarfile.open(target, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(root)))
    return target


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return _pack(_build_tree(tmp_path / "tree"), tmp_path / "20news-bydate.tar.gz")


@pytest.mark.parametrize("split", ["train", "test"])
def test_archive_and_extracted_copy_agree(tmp_path, packed, split):
    shuffled = _pack(tmp_path / "tree", tmp_path / "shuffled.tar.gz", "shuffled")
    extracted = tmp_path / "extracted"
    with tarfile.open(packed) as tar:
        tar.extractall(extracted, filter="data")
    for kwargs in ({}, {"max_per_class": 2}, {"remove": ALL}):
        from_folder = load_newsgroups(extracted, split, seed=4, **kwargs)
        for source in (packed, tmp_path, shuffled):
            _same(load_newsgroups(source, split, seed=4, **kwargs), from_folder)
    assert len(from_folder) == 20 * len(IDS[split])


def test_max_per_class_keeps_lowest_numeric_ids(packed):
    data = load_newsgroups(packed, "train", max_per_class=2)
    for group, texts in _by_class(data).items():
        assert texts == Counter(_post(group, "train", i).decode() for i in ("9", "100"))


def test_remove_strips_header_quotes_and_signature(packed):
    data = load_newsgroups(packed, "test", remove="headers", max_per_class=1)
    assert all(t.startswith("In article") for t in data.texts)
    data = load_newsgroups(packed, "test", remove=ALL, max_per_class=1)
    # Lowest id 77; the footer cut keeps the blank line before "--" (as sklearn).
    assert sorted(data.texts)[0] == "Body of test post 77 in alt.atheism.\n"


def test_train_read_stops_before_a_damaged_test_part(tmp_path):
    tree = _build_tree(tmp_path / "tree")
    noise = np.random.default_rng(0).bytes(300_000)  # incompressible, at the end
    (tree / "20news-bydate-test" / "talk.religion.misc" / "999999").write_bytes(noise)
    packed = _pack(tree, tmp_path / "cut.tar.gz")
    packed.write_bytes(packed.read_bytes()[:-100_000])
    assert len(load_newsgroups(packed, "train")) == 80
    with pytest.raises(ValueError, match=r"cut\.tar\.gz is not a readable"):
        load_newsgroups(packed, "test")


def test_corrupt_payload_is_caught_by_the_gzip_checksum(tmp_path, packed):
    raw = packed.read_bytes()
    middle = len(raw) // 2
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(raw[:middle] + bytes(32) + raw[middle + 32 :])
    with pytest.raises(ValueError, match=r"damaged\.tar\.gz"):
        load_newsgroups(damaged, "test")  # a full pass over the archive


def test_latin1_posts_are_counted_in_a_warning(tmp_path):
    tree = _build_tree(tmp_path)
    folder = tree / "20news-bydate-train" / "sci.med"
    (folder / "9").write_bytes("Subject: caf\u00e9\n\nna\u00efve".encode("latin-1"))
    (folder / "100").write_bytes("Subject: caf\u00e9\n\nok \u00e9".encode())
    with pytest.warns(RuntimeWarning, match=r"1 of 80 posts in .* not valid UTF-8"):
        data = load_newsgroups(tree, "train", remove="headers")
    assert "na\u00efve" in data.texts and "ok \u00e9" in data.texts


def test_download_path_uses_keras_get_file(monkeypatch, packed):
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        return str(packed)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    data = load_newsgroups(None, "test", max_per_class=1)
    assert calls == [("20news-bydate.tar.gz", ORIGIN, {})]
    assert ORIGIN == "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz"
    assert len(data) == 20


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "validation"}, "'validation'"),
        ({"remove": ("headers", "signatures")}, "'signatures'"),
        ({"remove": "header"}, "'header'"),
        ({"max_per_class": 0}, "max_per_class"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_newsgroups("/nonexistent", **kwargs)


def test_missing_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_newsgroups(tmp_path / "nope")
    (tmp_path / "20news-bydate-train").mkdir()
    with pytest.raises(FileNotFoundError, match="20news-bydate-test"):
        load_newsgroups(tmp_path, "test")


def test_archive_without_posts_and_plain_file(tmp_path):
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        info = tarfile.TarInfo("20news-bydate-train/README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ValueError, match="no posts under '20news-bydate-test/"):
        load_newsgroups(empty, "test")
    plain = tmp_path / "plain.txt"
    plain.write_text("not an archive")
    with pytest.raises(ValueError, match="plain.txt"):
        load_newsgroups(plain)


def test_train_and_test_groups_must_match(tmp_path, packed):
    tree = _build_tree(tmp_path / "x")
    extra = tree / "20news-bydate-test" / "zz.extra"
    extra.mkdir()
    (extra / "1").write_text("Subject: x\n\nbody")
    with pytest.raises(ValueError, match=r"differ .*zz\.extra"):
        load_newsgroups(tree, "train")  # folders: both splits are checked
    packed = _pack(tree, tmp_path / "mismatch.tar.gz")
    with pytest.raises(ValueError, match=r"differ .*zz\.extra"):
        load_newsgroups(packed, "test")  # archive: train was read on the way
