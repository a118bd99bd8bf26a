"""20 Newsgroups, "bydate" version (J. Rennie): Usenet posts in 20 topics.

Reads the original `20news-bydate.tar.gz` in one streamed pass (no extraction
to disk), an extracted copy, or downloads the archive for users with a
network. `remove` strips the parts of a post that identify its newsgroup
without saying anything about its topic (headers, signatures, quoted replies),
with the same meaning as scikit-learn's `fetch_20newsgroups(remove=...)`, so
scores can be compared with published baselines.

Archive member order: the copy in the shared data folder lists every file of
`20news-bydate-train` and then every file of `20news-bydate-test`, one class
folder after the other, file names in plain string order (so `10000` comes
before `8514` in 4 of the 40 folders). The loader relies on none of that for
*which* posts it returns; it only uses folder grouping to stop reading early.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable
from pathlib import Path

from recurrent_zoo.catalog import REMOVABLE
from recurrent_zoo.data.text_data import (
    TextClassificationData,
    decode_per_class,
    gather,
    name_key,
    open_archive,
    read_to_end,
)
from recurrent_zoo.data.text_files import read_class_folders

__all__ = [
    "NEWSGROUPS",
    "REMOVABLE",
    "load_newsgroups",
    "strip_footer",
    "strip_header",
    "strip_quotes",
]

ARCHIVE_NAME = "20news-bydate.tar.gz"
ORIGIN = "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz"
SPLITS = ("train", "test")
# The official corpus's class folders, in label order. Only used to decide
# when an archive read may stop early; the class names always come from the
# folders actually read.
NEWSGROUPS: tuple[str, ...] = (
    "alt.atheism",
    "comp.graphics",
    "comp.os.ms-windows.misc",
    "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware",
    "comp.windows.x",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.electronics",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.politics.misc",
    "talk.religion.misc",
)
# Reply attributions ("In article <...> joe@x writes:", "Jane wrote:") and
# quoted lines (">", "|"): the same patterns scikit-learn removes.
_QUOTE_STARTS = (">", "|", "In article", "Quoted from")
_QUOTE_MARKERS = ("writes in", "writes:", "wrote:", "says:", "said:")
_DASHES = re.compile(r"-*")


def load_newsgroups(
    source: str | os.PathLike[str] | None = None,
    split: str = "train",
    remove: Iterable[str] = (),
    max_per_class: int | None = None,
    seed: int = 0,
) -> TextClassificationData:
    """Load one 20 Newsgroups split; labels index the sorted newsgroup names.

    With `max_per_class`, each newsgroup keeps the N posts with the lowest
    numeric ids (file names are Usenet article numbers, so roughly the oldest
    N). An archive and its extracted copy give the same subset, whatever the
    archive's member order. The subset does not depend on `seed`; only the
    returned order does.

    An archive is read in one pass. Reading stops at the first member after
    the requested split's folder when everything before it looks like `tar`
    output (each newsgroup folder's files contiguous) and all 20 official
    newsgroups were found, so `train` skips the test part of the official
    archive. This relies on a folder never reappearing later in the archive,
    which holds for any archive `tar` writes from a directory. Otherwise (a
    folder seen again, a partial corpus) the whole archive is read.
    `max_per_class` cannot stop the read sooner: a folder's lowest ids are
    known only once the stream has left it, and folders come one after
    another; it only saves reading (and keeping) the other posts.

    Args:
        source: `20news-bydate.tar.gz`, a folder containing it, or the folder
            holding extracted `20news-bydate-train` / `-test` folders. When a
            folder holds both the archive and extracted folders, the archive
            wins. None downloads the archive with `keras.utils.get_file`
            into the Keras cache (`~/.keras/datasets`; needs a network).
        split: "train" or "test".
        remove: Any of "headers" (everything up to the first blank line),
            "footers" (from the last blank or dashes-only line on: the
            signature block) and "quotes" (quoted lines starting with `>` or
            `|`, and reply attributions such as "In article ... writes:").
            Applied in that order, as scikit-learn does.
        max_per_class: Keep at most this many posts of each newsgroup.
        seed: Seed of the returned order.

    Returns:
        A `TextClassificationData` with 20 classes, `alt.atheism` to
        `talk.religion.misc`, for the official corpus.

    Raises:
        ValueError: On an unknown split or `remove` entry, a non-positive
            `max_per_class`, a corrupt or truncated archive (naming it), no
            posts for the split, or train and test folders with different
            newsgroups.
        FileNotFoundError: If `source` (or the split inside it) is missing.

    Warns:
        RuntimeWarning: With the count of posts that were not valid UTF-8
            (decoded as latin-1 instead, like the original distribution).

    Example:
        >>> data = load_newsgroups("../shared/data", remove=("headers",))
        >>> len(data), data.class_names[0]
        (11314, 'alt.atheism')
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    remove = (remove,) if isinstance(remove, str) else tuple(remove)
    for entry in remove:
        if entry not in REMOVABLE:
            raise ValueError(f"remove entries must be in {REMOVABLE}, got {entry!r}")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be positive, got {max_per_class}")
    if source is None:
        import keras  # only the download path needs it

        source = keras.utils.get_file(ARCHIVE_NAME, origin=ORIGIN)
    path = Path(source).expanduser()
    if path.is_dir() and (path / ARCHIVE_NAME).is_file():
        path = path / ARCHIVE_NAME
    if path.is_file():
        raw = _read_archive(path, split, max_per_class)
    else:
        raw = _read_folders(path, split, max_per_class)

    per_class = decode_per_class(raw, str(path), what="posts")
    for name, texts in per_class.items():
        if "headers" in remove:
            texts = [strip_header(t) for t in texts]
        if "footers" in remove:
            texts = [strip_footer(t) for t in texts]
        if "quotes" in remove:
            texts = [strip_quotes(t) for t in texts]
        per_class[name] = texts
    return gather(per_class, seed)


def strip_header(text: str) -> str:
    """Everything after the first blank line (a post with none becomes "")."""
    return text.partition("\n\n")[2]


def strip_footer(text: str) -> str:
    """Cut from the last blank or dashes-only line of the stripped post on.

    Signatures follow a `--` line (or a blank line) at the end. A post whose
    only such line is its first, or that has none, is returned unchanged.
    """
    lines = text.strip().split("\n")
    for number in range(len(lines) - 1, 0, -1):
        if _DASHES.fullmatch(lines[number].strip()):
            return "\n".join(lines[:number])
    return text


def strip_quotes(text: str) -> str:
    """Drop quoted lines and reply attribution lines; keep the rest."""
    return "\n".join(
        line
        for line in text.split("\n")
        if not line.startswith(_QUOTE_STARTS)
        and not any(marker in line for marker in _QUOTE_MARKERS)
    )


class _LowestIds:
    """The N files with the lowest `name_key`, filled in any order."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.items: list[tuple[tuple[int, int, str], bytes]] = []

    def wants(self, key: tuple[int, int, str]) -> bool:
        full = self.limit is not None and len(self.items) >= self.limit
        return not full or key < self.items[-1][0]

    def add(self, key: tuple[int, int, str], payload: bytes) -> None:
        bisect.insort(self.items, (key, payload), key=lambda item: item[0])
        if self.limit is not None and len(self.items) > self.limit:
            self.items.pop()


def _read_archive(
    path: Path, split: str, max_per_class: int | None
) -> dict[str, list[bytes]]:
    top = f"20news-bydate-{split}"
    kept: dict[str, _LowestIds] = {}
    others: set[str] = set()  # newsgroups of the other split, when passed
    entered, grouped = False, True
    done: set[str] = set()  # class folders already entered
    current = None
    with open_archive(path) as archive:
        for member in archive:
            parts = member.name.removeprefix("./").split("/")
            if top not in parts:
                if entered and grouped and kept.keys() >= set(NEWSGROUPS):
                    break  # the split's folder is over: skip the rest of the stream
                if len(parts) >= 3 and parts[-3].startswith("20news-bydate-"):
                    others.add(parts[-2])
                continue
            entered = True
            if not member.isfile() or parts[-3:-2] != [top] or parts[-1][:1] == ".":
                continue  # folders, and files outside <split>/<group>/<id>
            group, key = parts[-2], name_key(parts[-1])
            if group != current:
                grouped = grouped and group not in done
                done.add(group)
                current = group
            bucket = kept.setdefault(group, _LowestIds(max_per_class))
            if bucket.wants(key):  # only inflate what may be kept
                reader = archive.extractfile(member)
                assert reader is not None  # regular files always have a reader
                bucket.add(key, reader.read())
        else:
            read_to_end(archive)  # a full pass: let gzip verify its checksum
    if not kept:
        raise ValueError(f"no posts under '{top}/<newsgroup>/' in archive {path}")
    _check_same_groups(set(kept), others, f"archive {path}")
    return {
        group: [payload for _, payload in kept[group].items] for group in sorted(kept)
    }


def _read_folders(
    path: Path, split: str, max_per_class: int | None
) -> dict[str, list[bytes]]:
    if not path.exists():
        raise FileNotFoundError(f"20 Newsgroups source not found: {path}")
    root = path / f"20news-bydate-{split}"
    if not root.is_dir():
        raise FileNotFoundError(
            f"no {ARCHIVE_NAME} and no extracted {root.name} folder in {path}"
        )
    raw = read_class_folders(root, max_per_class=max_per_class)
    other = path / ("20news-bydate-test" if split == "train" else "20news-bydate-train")
    if other.is_dir():
        groups = {p.name for p in other.iterdir() if p.is_dir()}
        _check_same_groups(set(raw), {g for g in groups if g[:1] != "."}, str(path))
    return raw


def _check_same_groups(mine: set[str], others: set[str], where: str) -> None:
    # Labels index sorted names: a group missing from one split would shift
    # every later label, silently mislabeling train against test.
    if others and others != mine:
        raise ValueError(
            f"train and test newsgroups differ in {where}: "
            f"only in one split: {sorted(mine ^ others)}"
        )
