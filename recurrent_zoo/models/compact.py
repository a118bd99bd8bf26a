"""Small `.keras` files: float32 weights stored as float16, or coarser.

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

Float16's low mantissa bits are noise to deflate, so a vocabulary-sized
matrix still costs about 15 bits a value. `rounded=` names the variables
worth coarser storage: each is first rounded to a grid of step `h`, a
power of two at most `relative_step` times its root mean square, so it
holds a few dozen distinct values that deflate packs into about 6 bits
each (the topic preset's 60,000 x 64 embedding: 7.1 MB -> 3.1 MB). The
error is absolute, at most h/2 per value: right for lookups and
input-side kernels, whose output error is a sum of such errors, and not
meant for recurrent kernels, whose errors compound over time steps. The
step is a power of two so that `k * h` is exact in float16 (for
|k| < 2048): the loaded weights are exactly the rounded ones.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import h5py
import keras
import numpy as np

from recurrent_zoo.run_files import replaced_atomically

__all__ = ["grid_step", "save_compact"]

# The archive member Keras keeps the variables in (unsharded saves).
_WEIGHTS_MEMBER = "model.weights.h5"
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_OPTIMIZER_GROUP = "/optimizer"


def save_compact(
    model: keras.Model,
    path: str | os.PathLike[str],
    *,
    rounded: Sequence[str] = (),
    relative_step: float = 0.25,
) -> int:
    """Saves `model` like `model.save`, with its float32 weights as float16.

    Args:
        model: the model to save.
        path: the `.keras` file to write; an existing file is replaced
            atomically, and left as it was if saving fails.
        rounded: paths (`variable.path`, e.g. "embedding/embeddings") of
            float32 variables to store on a coarse grid as well: each value
            becomes the nearest multiple of `grid_step(value, relative_step)`.
            The model's own variables hold the rounded values while
            `model.save` runs (do not use the model from another thread
            meanwhile) and are set back afterwards, bit for bit.
        relative_step: the grid's largest step, relative to each rounded
            variable's root mean square; no value moves by more than half a
            step. The presets use 0.25, chosen on validation
            (`benchmarks/preset_storage.py`).

    Returns:
        The size of the written file in bytes.

    Raises:
        ValueError: if `path` does not end in `.keras`, a path in `rounded`
            names no float32 variable of the model, `relative_step` is not
            in (0, 1], or a float32 weight has a value float16 cannot hold
            (beyond +-65504, or not finite); that message names its dataset
            in `model.weights.h5`.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path must end in .keras. Received: path={str(path)!r}")
    if not 0.0 < relative_step <= 1.0:
        raise ValueError(
            "relative_step must lie in (0, 1]. "
            f"Received: relative_step={relative_step!r}"
        )
    variables = {v.path: v for v in model.weights}
    if isinstance(rounded, str):
        rounded = (rounded,)
    for name in rounded:
        if name not in variables or variables[name].dtype != "float32":
            raise ValueError(
                f"rounded names no float32 variable of the model: {name!r}. "
                f"Its variables: {sorted(variables)}"
            )
    originals = {name: keras.ops.convert_to_numpy(variables[name]) for name in rounded}
    # Readers never see a half-written file (`run_files`).
    with replaced_atomically(path) as temporary:
        # Rounded in place, for `model.save` to write; Keras saves by its
        # own layer paths, which this module does not try to reproduce.
        for name, value in originals.items():
            h = grid_step(value, relative_step)
            variables[name].assign(value if h == 0 else np.round(value / h) * h)
        try:
            model.save(temporary)
        finally:
            for name, value in originals.items():
                variables[name].assign(value)
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
    return path.stat().st_size


def grid_step(value: np.ndarray, relative_step: float = 0.25) -> float:
    """The grid `save_compact(rounded=...)` rounds `value` to.

    The largest power of two at most `relative_step` times the root mean
    square of `value`; 0 for an all-zero array, which is left as it is.
    """
    rms = math.sqrt(float(np.mean(np.square(value, dtype=np.float64))))
    if rms == 0.0:
        return 0.0
    return 2.0 ** math.floor(math.log2(relative_step * rms))


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
