"""`TextClassificationData.split` / `subset` and the helpers the loaders share."""

import gzip
import io
import math
import tarfile
from collections import Counter

import numpy as np
import pytest

from recurrent_zoo.data import TextClassificationData
from recurrent_zoo.data.text_data import (
    decode_texts,
    name_key,
    open_archive,
    read_to_end,
)


def _data(counts: list[int], seed: int = 0) -> TextClassificationData:
    """`counts[c]` examples of class c, texts unique, in shuffled order."""
    labels = np.repeat(np.arange(len(counts)), counts)
    labels = np.random.default_rng(seed).permutation(labels)
    texts = [f"doc {i} of class {y}" for i, y in enumerate(labels)]
    return TextClassificationData(texts, labels, tuple(f"c{i}" for i in counts))


def _pairs(data: TextClassificationData) -> Counter:
    return Counter(zip(data.texts, data.labels.tolist(), strict=True))


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_split_is_stratified_disjoint_and_complete(fraction):
    data = _data([100, 37, 5, 2])
    rest, held = data.split(fraction, seed=3)
    assert rest.class_names == held.class_names == data.class_names
    assert not set(rest.texts) & set(held.texts)
    assert _pairs(rest) + _pairs(held) == _pairs(data)
    for label, size in enumerate([100, 37, 5, 2]):
        n_held = int(np.sum(held.labels == label))
        # round(fraction * size), but both parts keep at least one example.
        assert n_held == min(max(round(fraction * size), 1), size - 1)
        assert np.sum(rest.labels == label) == size - n_held
    # Each part keeps the original relative order (the loaders' shuffle).
    position = {text: i for i, text in enumerate(data.texts)}
    for part in (rest, held):
        positions = [position[t] for t in part.texts]
        assert positions == sorted(positions)


def test_split_is_deterministic_and_seeded():
    data = _data([50, 50])
    first = data.split(0.2, seed=7)
    again = data.split(0.2, seed=7)
    other = data.split(0.2, seed=8)
    assert first[1].texts == again[1].texts and first[0].texts == again[0].texts
    assert set(first[1].texts) != set(other[1].texts)
    assert first[1].labels.tolist().count(0) == 10


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_split_rejects_fractions_outside_open_interval(fraction):
    with pytest.raises(ValueError, match=f"got {fraction!r}"):
        _data([10, 10]).split(fraction)


@pytest.mark.parametrize("counts", [[10, 1], [10, 0]])
def test_split_rejects_classes_too_small(counts):
    data = _data(counts)
    with pytest.raises(ValueError, match=rf"class 'c{counts[1]}' has {counts[1]} "):
        data.split(0.5)


def test_subset_indices_mask_and_errors():
    data = _data([3, 3])
    picked = data.subset([4, 0, 4])
    assert picked.texts == [data.texts[4], data.texts[0], data.texts[4]]
    assert picked.labels.tolist() == [data.labels[4], data.labels[0], data.labels[4]]
    mask = data.labels == 1
    assert data.subset(mask).labels.tolist() == [1, 1, 1]
    assert len(data.subset([])) == 0 and data.subset([]).class_names == data.class_names
    with pytest.raises(IndexError):
        data.subset([6])
    with pytest.raises(IndexError, match="mask"):
        data.subset([True, False])
    with pytest.raises(TypeError, match="integer"):
        data.subset([0.5])
    assert not picked.labels.flags.writeable


def test_decode_falls_back_to_latin1_and_counts():
    payloads = ["café".encode(), "café".encode("latin-1"), b"plain", b"\xff\xfe"]
    with pytest.warns(RuntimeWarning, match=r"2 of 4 posts in here are not valid"):
        texts = decode_texts(payloads, "here", what="posts")
    assert texts == ["café", "café", "plain", "ÿþ"]


def test_name_key_orders_numbers_by_value():
    names = ["10000", "8514", "a.txt", "9", "10_1.txt"]
    assert sorted(names, key=name_key) == ["9", "8514", "10000", "10_1.txt", "a.txt"]


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "damage",
    ["not_gzip", "gzip_not_tar", "truncated", "corrupt_middle"],
)
def test_damaged_archives_raise_value_error_naming_the_file(tmp_path, damage):
    words = np.random.default_rng(0).choice(["spam", "ham", "eggs", "toast"], 40_000)
    good = _tar_gz({f"a/{i}": " ".join(words[i::5]).encode() for i in range(5)})
    middle = len(good) // 2
    payload = {
        "not_gzip": b"just some text, not an archive",
        "gzip_not_tar": gzip.compress(b"x" * 5000),
        "truncated": good[:middle],
        "corrupt_middle": good[:middle] + bytes(64) + good[middle + 64 :],
    }[damage]
    path = tmp_path / f"{damage}.tar.gz"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=f"{damage}.tar.gz is not a readable"):
        with open_archive(path) as archive:
            for member in archive:
                archive.extractfile(member).read()
            read_to_end(archive)  # the corrupt payload still inflates: CRC
