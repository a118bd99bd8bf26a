"""Writing and finding versions of a TF Serving model base path.

Each version is written into a hidden folder (TF Serving only loads
numbered ones) and renamed into place once complete.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from recurrent_zoo.export.char_lm import GENERATE_KEY, char_lm_functions
from recurrent_zoo.export.forecaster import forecaster_function
from recurrent_zoo.export.serving import (
    INPUT_KEY,
    SIGNATURE_KEY,
    check_model,
    check_top_k,
    cudnn_disabled,
    serving_function,
)
from recurrent_zoo.models import CharLanguageModel, Forecaster

__all__ = ["export_saved_model", "find_saved_model"]

_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


def _versions(path: Path) -> list[int]:
    if not path.is_dir():
        return []
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def _metadata(model: keras.Model, top_k: int, outputs: Sequence[str]) -> dict:
    import recurrent_zoo

    config = model.get_config() if hasattr(model, "get_config") else {}
    return {
        "format": "recurrent_zoo.text_classifier.saved_model/1",
        "signature": SIGNATURE_KEY,
        "input": {"name": INPUT_KEY, "dtype": "string", "shape": [None]},
        "outputs": list(outputs),
        "class_names": list(getattr(model, "class_names", None) or ()),
        "top_k": top_k,
        "model_class": type(model).__name__,
        "model_config": json.loads(json.dumps(config, default=str)),
        "recurrent_zoo": recurrent_zoo.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


def _captured_resources(model: keras.Model, function: Any) -> list:
    """The lookup tables (vocabularies) of `model` that `function` reads.

    A SavedModel must own every resource its functions capture. Tables live
    on the layers (the vectorizer's StringLookup); `adapt` leaves a second,
    unused table of word counts there, which is left out.
    """
    captured = {id(t) for t in function.graph.external_captures}
    found: dict[int, Any] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        # The checkpoint view lists attributes only; the SavedModel view would
        # also trace every tf.function it meets (a whole model trace each).
        for obj in tf.train.TrackableView(layer).descendants():
            if (
                isinstance(obj, tf.saved_model.experimental.TrackableResource)
                and id(obj.resource_handle) in captured
            ):
                found[id(obj)] = obj
    return list(found.values())


def _classifier_signatures(model: keras.Model, top_k: int) -> tuple[dict, list, dict]:
    """A classifier's signature, the tables it reads, and its metadata."""
    with cudnn_disabled(model):
        # The only trace of the model: the signature and the saved function
        # reuse it.
        concrete = serving_function(model, top_k).get_concrete_function()
    metadata = _metadata(model, top_k, list(concrete.structured_outputs))
    resources = _captured_resources(model, concrete)
    return {SIGNATURE_KEY: concrete}, resources, metadata


def _char_lm_signatures(model: CharLanguageModel) -> tuple[dict, list, dict]:
    """A language model's scoring and generating signatures, and metadata."""
    with cudnn_disabled(model):
        functions = char_lm_functions(model)
        signatures = {
            key: functions[key].get_concrete_function()
            for key in (SIGNATURE_KEY, GENERATE_KEY)
        }
    metadata = _metadata(model, 0, list(signatures[SIGNATURE_KEY].structured_outputs))
    metadata.update(
        format="recurrent_zoo.char_language_model.saved_model/1",
        signatures=list(signatures),
        characters=len(model.vocabulary.characters),
    )
    return signatures, [functions["table"]], metadata


def _forecaster_signatures(model: Forecaster) -> tuple[dict, list, dict]:
    """A forecaster's window-in, forecasts-out signature, and metadata."""
    with cudnn_disabled(model):
        serve, extra = forecaster_function(model)
        concrete = serve.get_concrete_function()
    metadata = _metadata(model, 0, list(concrete.structured_outputs))
    metadata.update(extra)
    return {SIGNATURE_KEY: concrete}, [], metadata


def _write(model: keras.Model, target: Path, top_k: int) -> None:
    """Writes one complete SavedModel version into the empty folder `target`."""
    if isinstance(model, CharLanguageModel):
        signatures, resources, metadata = _char_lm_signatures(model)
    elif isinstance(model, Forecaster):
        signatures, resources, metadata = _forecaster_signatures(model)
    else:
        check_model(model)
        signatures, resources, metadata = _classifier_signatures(model, top_k)
    root = tf.Module(name="recurrent_zoo_serving")
    for key, concrete in signatures.items():
        setattr(root, key, concrete)
    # Only what inference reads is saved: not the optimizer's state, and not
    # the Keras objects (the loader needs no Keras).
    variables = {id(v): v for c in signatures.values() for v in c.variables}
    root.model_variables = list(variables.values())
    root.lookup_tables = resources
    # The recurrent kernels' custom gradients are saved too (about a second
    # more): without them every `tf.saved_model.load` logs a warning, and
    # gradients of the served model (e.g. for saliency) would fail.
    tf.saved_model.save(root, str(target), signatures=signatures)
    extra = target / "assets.extra"
    extra.mkdir()
    names = getattr(model, "class_names", None) or ()
    if names:
        (extra / "labels.txt").write_text(
            "".join(f"{name}\n" for name in names), encoding="utf-8"
        )
    (extra / "recurrent_zoo.json").write_text(
        json.dumps(metadata, indent=2) + "\n", encoding="utf-8"
    )


def export_saved_model(
    model: keras.Model,
    path: str | os.PathLike[str],
    version: int | None = None,
    overwrite: bool = False,
    top_k: int = 5,
) -> Path:
    """Exports `model` as version `version` of a TF Serving model at `path`.

    The SavedModel is written into a hidden folder inside `path` (which TF
    Serving ignores, as it only loads numbered folders) and renamed into
    `path/<version>` once complete, so a failed or interrupted export never
    leaves a folder that looks like a finished version.

    Args:
        model: a trained `TextClassifier`, or a `CharLanguageModel` (its
            scoring and generating signatures: `recurrent_zoo.export.char_lm`;
            `top_k` does not apply), or a `Forecaster` (a window of floats
            in, forecasts out: `recurrent_zoo.export.forecaster`).
        path: the model base path; created if missing.
        version: the version folder to write, a non-negative int; None takes
            one more than the highest existing version (1 in a new folder).
        overwrite: replace an existing `version`. The old version is moved
            aside and deleted only after the new one is in place (a reader
            may briefly find neither).
        top_k: best classes listed in the `top_k_*` outputs of models with
            more than two classes; 0 leaves those outputs out.

    Returns:
        The version folder written, `path/<version>`.

    Raises:
        FileExistsError: if `path/<version>` exists and `overwrite` is False,
            or if `path` itself is a SavedModel (pass its parent instead).
        TypeError: if `model` is neither a language model nor a text
            classifier with `class_names`.
        ValueError: on a bad `version` or `top_k`, or a model that does not
            take one string input.

    Example:

    >>> export_saved_model(model, "serving/imdb")        # doctest: +SKIP
    PosixPath('serving/imdb/1')
    """
    if not isinstance(model, (CharLanguageModel, Forecaster)):
        check_model(model)
    top_k = check_top_k(top_k)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 0
    ):
        raise ValueError(f"version must be a non-negative int, got {version!r}")
    base = Path(path)
    if (base / "saved_model.pb").exists():
        raise FileExistsError(
            f"{base} is itself a SavedModel; export into its parent folder, "
            "which holds the numbered versions"
        )
    if version is None:
        version = (_versions(base) or [0])[-1] + 1
    target = base / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; pass overwrite=True (--overwrite) to "
            "replace it, or another version"
        )
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f"{_TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    old = None
    try:
        tmp.mkdir()
        _write(model, tmp, top_k)
        if target.exists():  # only when overwrite=True
            old = base / f"{_OLD_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except OSError as err:
            # rename(2) onto a non-empty folder fails: another export of this
            # version finished first, and is not replaced by this one.
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(f"{target} appeared during the export") from err
            raise
    except BaseException:
        if old is not None and not target.exists():
            os.rename(old, target)  # the previous version, back in place
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def find_saved_model(path: str | os.PathLike[str]) -> Path:
    """The SavedModel folder at `path`: itself, or its highest version.

    Args:
        path: a SavedModel folder (holding `saved_model.pb`) or a model base
            path holding numbered versions.

    Returns:
        The folder holding `saved_model.pb`.

    Raises:
        FileNotFoundError: if `path` is neither.
    """
    base = Path(path)
    if (base / "saved_model.pb").is_file():
        return base
    for version in reversed(_versions(base)):
        if (base / str(version) / "saved_model.pb").is_file():
            return base / str(version)
    raise FileNotFoundError(
        f"no SavedModel at {base}: expected saved_model.pb there or in a "
        "numbered version folder"
    )
