"""Half-size `.keras` files: float32 weights stored as float16.

A shipped preset is mostly two vocabulary-sized float32 matrices (the word
embedding and the wide part's kernel), so storing every float32 array as
float16 halves the file. Only the storage changes: the config still names
float32 variables, and Keras's loader assigns the stored arrays to them,
which casts, so `keras.saving.load_model` (and thus `from_preset`) returns
an ordinary float32 model that can be fine-tuned and exported as before,
its weights the float32 ones rounded to float16 (about 3 significant
digits, ample for inference). Everything else in the archive, the
vocabulary assets and the h5 layout included, is copied unchanged.

A compiled model's optimizer state stays float32: Adam's second moments
are often far below float16's smallest values (they would flush to zero
and the first resumed steps would be far too large), and presets carry no
optimizer anyway.
"""

from __future__ import annotations

import io
import os
import secrets
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np

__all__ = ["save_compact"]

# The archive member Keras keeps the variables in (unsharded saves).
_WEIGHTS_MEMBER = "model.weights.h5"
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_OPTIMIZER_GROUP = "/optimizer"


def save_compact(model: keras.Model, path: str | os.PathLike[str]) -> int:
    """Saves `model` like `model.save`, with its float32 weights as float16.

    Args:
        model: the model to save.
        path: the `.keras` file to write; an existing file is replaced
            atomically, and left as it was if saving fails.

    Returns:
        The size of the written file in bytes.

    Raises:
        ValueError: if `path` does not end in `.keras`, or a float32 weight
            has a value float16 cannot hold (beyond +-65504, or not finite);
            the message names its dataset in `model.weights.h5`.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path must end in .keras. Received: path={str(path)!r}")
    # In the target's directory, so that `os.replace` is a rename within one
    # file system and readers never see a half-written file. Not `mkstemp`:
    # its file is private (0600), and the rename would keep that mode.
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(8)}.keras")
    try:
        model.save(temporary)
        with zipfile.ZipFile(temporary) as archive:
            members = [(info, archive.read(info)) for info in archive.infolist()]
        # Every array is checked before the temporary file is rewritten.
        members = [
            (info, _halve_floats(data) if info.filename == _WEIGHTS_MEMBER else data)
            for info, data in members
        ]
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for info, data in members:
                # A fresh entry: the old one carries the stored sizes and
                # compression of the uncompressed archive `model.save` wrote.
                entry = zipfile.ZipInfo(info.filename, info.date_time)
                entry.external_attr = info.external_attr
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path.stat().st_size


def _halve_floats(h5_bytes: bytes) -> bytes:
    """A copy of an h5 file with each float32 dataset stored as float16."""
    out = io.BytesIO()
    with (
        h5py.File(io.BytesIO(h5_bytes), "r") as source,
        h5py.File(out, "w") as target,
    ):
        _copy_group(source, target)
    return out.getvalue()


def _copy_group(source: h5py.Group, target: h5py.Group, halve: bool = True) -> None:
    _copy_attributes(source, target)
    for name, item in source.items():
        is_float32 = (
            halve
            and isinstance(item, h5py.Dataset)
            and item.dtype.kind == "f"
            and item.dtype.itemsize == 4
        )
        if isinstance(item, h5py.Group):
            keep = item.name == _OPTIMIZER_GROUP
            _copy_group(item, target.create_group(name), halve and not keep)
        elif is_float32:
            array = item[()]
            # A NaN fails this comparison too: a weight float16 cannot hold
            # would load as inf or NaN, silently breaking the model.
            if array.size and not np.abs(array).max() <= _FLOAT16_MAX:
                raise ValueError(
                    f"weight {item.name!r} in {_WEIGHTS_MEMBER} does not fit "
                    f"in float16: largest magnitude {np.abs(array).max()}, "
                    f"float16 holds at most {_FLOAT16_MAX}"
                )
            half = target.create_dataset(name, data=array.astype(np.float16))
            _copy_attributes(item, half)
        else:
            # Integer and other datasets, and the optimizer's state:
            # HDF5's own copy keeps their type, layout and attributes.
            source.copy(item, target, name=name)


def _copy_attributes(source: h5py.HLObject, target: h5py.HLObject) -> None:
    for name in source.attrs:
        # With the stored type, not the one h5py would infer from the value.
        stored_type = source.attrs.get_id(name).dtype
        target.attrs.create(name, source.attrs[name], dtype=stored_type)
