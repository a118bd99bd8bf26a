"""Loading a `.keras` file a user names, with errors that say what is wrong.

Keras reports a truncated or corrupt `.keras` file as "File not found"
(or with a traceback from deep inside its loader); a command must instead
end in one line naming the file and the problem. `load_model_file` checks
the archive first, then loads it, and raises `ModelFileError` (a
`ValueError`) with such a line for every way the file can be unusable.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

__all__ = ["ModelFileError", "load_model_file"]


class ModelFileError(ValueError):
    """A model file that is missing, unreadable, or not a Keras model."""


def _check_archive(path: Path) -> None:
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file (a .keras model is one file)")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path}: not a .keras model (not a zip archive; truncated or "
            "corrupt, or another format)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelFileError(f"{path}: unreadable .keras archive ({err})") from err
    if damaged is not None:
        raise ModelFileError(
            f"{path}: damaged .keras archive ({damaged} fails its checksum)"
        )
    if "config.json" not in names:
        raise ModelFileError(f"{path}: not a Keras 3 .keras model (no config.json)")


def load_model_file(path: str | os.PathLike[str], compile: bool = False):
    """`keras.saving.load_model(path)`, for a file a user named.

    Raises:
        ModelFileError: naming the file, if it is missing, not a `.keras`
            archive, damaged, or holds something Keras cannot rebuild.
    """
    path = Path(path)
    _check_archive(path)
    import keras

    import recurrent_zoo.models  # noqa: F401  registers the classes to load

    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as err:  # Keras raises many kinds for bad content.
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        detail = f"{type(err).__name__}: {first}" if first else type(err).__name__
        raise ModelFileError(f"{path}: Keras could not load it ({detail})") from err
