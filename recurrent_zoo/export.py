"""SavedModel export of a `TextClassifier` that serves raw strings anywhere.

    from recurrent_zoo.export import export_saved_model, load_predictor
    export_saved_model(model, "serving/imdb")        # -> serving/imdb/1
    predict = load_predictor("serving/imdb")         # highest version
    predict(["A moving, beautifully acted film."])["label"]

The export is a TF Serving model base path: one numbered folder per version,
each a complete SavedModel whose `serving_default` signature takes a batch of
strings and returns (`C` classes, `k = min(top_k, C)`):

    input  text                 string  [None]
    output probabilities        float32 [None, C]   (binary too: [1 - p, p])
           label_id             int64   [None]      argmax of probabilities
           label                string  [None]      class name of label_id
           probability          float32 [None]      probability of label_id
           top_k_ids            int64   [None, k]   only with more than two
           top_k_labels         string  [None, k]   classes and top_k > 0
           top_k_probabilities  float32 [None, k]

`assets.extra/labels.txt` (one class name per line, in label-id order) and
`assets.extra/recurrent_zoo.json` (classes, outputs, model config, versions)
sit beside it; `assets.extra` is TF Serving's place for files the graph does
not read.

The graph is TensorFlow ops only: it loads with `tf.saved_model.load` where
recurrent_zoo (or Keras) is not installed, and on a CPU whatever device the
model was trained on, because Keras's cuDNN code path is switched off while
tracing (a graph traced on a GPU would otherwise hold `CudnnRNN` ops that have
no CPU kernel). Text that is not valid UTF-8 is repaired in the graph (bad
bytes become U+FFFD) instead of failing the request.

The SavedModel's root is a bare `tf.Module` holding the signature's one
trace, the variables it reads and the vocabulary tables: no optimizer state,
no Keras objects. In Python, `tf.saved_model.load(path).serving_default(
tf.constant([...]))` calls it too.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from recurrent_zoo.models.loading import load_model_file

__all__ = [
    "INPUT_KEY",
    "LABELS_FILE",
    "METADATA_FILE",
    "SIGNATURE_KEY",
    "Predictor",
    "export_saved_model",
    "find_saved_model",
    "load_predictor",
    "serving_function",
]

SIGNATURE_KEY = "serving_default"
INPUT_KEY = "text"
LABELS_FILE = "assets.extra/labels.txt"
METADATA_FILE = "assets.extra/recurrent_zoo.json"
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


def _check_model(model: Any) -> None:
    names = getattr(model, "class_names", None)
    if not isinstance(model, keras.Model) or not names:
        raise TypeError(
            "expected a recurrent_zoo TextClassifier (a keras.Model with "
            f"`class_names`), got {type(model).__name__}"
        )
    if len(model.inputs) != 1 or model.inputs[0].dtype != "string":
        raise ValueError(
            "the model must take a single string input, got inputs "
            f"{[(t.name, t.dtype) for t in model.inputs]}"
        )


def _check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
    return top_k


def _serve(model: keras.Model, text: tf.Tensor, top_k: int) -> dict[str, tf.Tensor]:
    """The signature's body: raw strings to the named outputs."""
    names = tf.constant(list(model.class_names), dtype=tf.string)
    # A signature called directly (as TF Serving does) does not check the
    # input's shape: without this, a matrix fails deep in the tokenizer.
    text = tf.ensure_shape(text, [None], name="text_must_be_a_vector")
    # Identity on valid UTF-8, so parity with the Keras model holds; invalid
    # bytes get a defined meaning whatever `standardize` the vectorizer uses.
    text = tf.strings.unicode_transcode(
        text, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace"
    )
    p = tf.cast(model(text, training=False), tf.float32)
    if len(model.class_names) == 2:
        p = tf.concat([1.0 - p, p], axis=1)  # as TextClassifier.predict_proba
    label_id = tf.argmax(p, axis=1, output_type=tf.int64)
    outputs = {
        "probabilities": p,
        "label_id": label_id,
        "label": tf.gather(names, label_id),
        "probability": tf.reduce_max(p, axis=1),
    }
    k = min(top_k, len(model.class_names))
    if len(model.class_names) > 2 and k:
        values, ids = tf.math.top_k(p, k=k)
        outputs["top_k_ids"] = tf.cast(ids, tf.int64)
        outputs["top_k_labels"] = tf.gather(names, ids)
        outputs["top_k_probabilities"] = values
    return outputs


@contextlib.contextmanager
def _cudnn_disabled(model: keras.Model) -> Iterator[None]:
    """Keras LSTM/GRU layers trace their portable loop, not cuDNN, meanwhile.

    Keras picks cuDNN at trace time when a GPU is visible and bakes the
    `CudnnRNN` op into the graph; that op has no CPU kernel, so such an export
    fails on a CPU-only server. This package's layers never use cuDNN.
    """
    saved = []
    # `_flatten_layers` also reaches layers held by wrappers (Bidirectional).
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if hasattr(layer, "use_cudnn"):
            saved.append((layer, layer.use_cudnn))
            layer.use_cudnn = False
    try:
        yield
    finally:
        for layer, value in saved:
            layer.use_cudnn = value


def serving_function(model: keras.Model, top_k: int = 5) -> Callable:
    """The exported signature as an in-process `tf.function` (no SavedModel).

    Args:
        model: a `TextClassifier` (or any keras.Model over one string input
            with `class_names`).
        top_k: number of best classes in the `top_k_*` outputs for models with
            more than two classes; 0 leaves them out.

    Returns:
        A `tf.function` taking a `tf.string` tensor of shape `[None]` and
        returning the dict of outputs described in this module's docstring.

    Raises:
        TypeError: if `model` has no `class_names`.
        ValueError: if the model does not take one string input, or on a bad
            `top_k`.
    """
    _check_model(model)
    top_k = _check_top_k(top_k)

    # No Python control flow depends on tensors: autograph would only slow
    # tracing down.
    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)],
        autograph=False,
    )
    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return _serve(model, text, top_k)

    return serve


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
        "class_names": list(model.class_names),
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


def _write(model: keras.Model, target: Path, top_k: int) -> None:
    """Writes one complete SavedModel version into the empty folder `target`."""
    with _cudnn_disabled(model):
        serve = serving_function(model, top_k)
        # The only trace of the model: the signature and the saved function
        # reuse it.
        concrete = serve.get_concrete_function()
    root = tf.Module(name="recurrent_zoo_serving")
    root.serving_default = concrete
    # Only what inference reads is saved: not the optimizer's state, and not
    # the Keras objects (the loader needs no Keras).
    root.model_variables = list(concrete.variables)
    root.lookup_tables = _captured_resources(model, concrete)
    # The recurrent kernels' custom gradients are saved too (about a second
    # more): without them every `tf.saved_model.load` logs a warning, and
    # gradients of the served model (e.g. for saliency) would fail.
    tf.saved_model.save(root, str(target), signatures={SIGNATURE_KEY: concrete})
    outputs = list(concrete.structured_outputs)
    extra = target / "assets.extra"
    extra.mkdir()
    (extra / "labels.txt").write_text(
        "".join(f"{name}\n" for name in model.class_names), encoding="utf-8"
    )
    (extra / "recurrent_zoo.json").write_text(
        json.dumps(_metadata(model, top_k, outputs), indent=2) + "\n",
        encoding="utf-8",
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
        model: a trained `TextClassifier`.
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
        TypeError: if `model` is not a text classifier with `class_names`.
        ValueError: on a bad `version` or `top_k`, or a model that does not
            take one string input.

    Example:

    >>> export_saved_model(model, "serving/imdb")        # doctest: +SKIP
    PosixPath('serving/imdb/1')
    """
    _check_model(model)
    top_k = _check_top_k(top_k)
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


def _as_bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        # Recovers the original bytes of command-line arguments and file
        # names that Python decoded with surrogateescape.
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates, e.g. from JSON
        return text.encode("utf-8", "replace")


class Predictor:
    """Raw strings to the serving outputs, from a SavedModel or a `.keras` file.

    Both sources run the same signature (a `.keras` model through
    `serving_function`), so they return the same keys.

    Args:
        function: takes a `tf.string` tensor `[None]`, returns the outputs.
        class_names: class names in label-id order.
        source: "saved_model" or "keras", for messages.
        path: where the model was loaded from.
        batch_size: texts per call, to bound memory on long inputs.
    """

    def __init__(
        self,
        function: Callable,
        class_names: Sequence[str],
        source: str,
        path: Path,
        batch_size: int = 256,
    ) -> None:
        self.function = function
        self.class_names = tuple(class_names)
        self.source = source
        self.path = path
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str | bytes]) -> dict[str, np.ndarray]:
        """Outputs for `texts`, as NumPy arrays (strings decoded to `str`).

        Args:
            texts: str or bytes; str that cannot be UTF-8 encoded and bytes
                that are not UTF-8 are repaired (U+FFFD), never rejected.

        Returns:
            The signature's outputs, each with `len(texts)` rows.
        """
        data = [_as_bytes(t) for t in texts]
        chunks = [
            self.function(tf.constant(data[i : i + self.batch_size], tf.string))
            # One call even for no texts: the outputs keep their shapes.
            for i in range(0, max(len(data), 1), self.batch_size)
        ]
        result = {}
        for key in chunks[0]:
            value = np.concatenate([c[key].numpy() for c in chunks], axis=0)
            if value.dtype == object:
                value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(
                    value
                )
            result[key] = value
        return result


def load_predictor(
    path: str | os.PathLike[str], top_k: int = 5, batch_size: int = 256
) -> Predictor:
    """Loads a `.keras` model file or an exported SavedModel for prediction.

    Args:
        path: a `.keras` file, a SavedModel folder, or a model base path (its
            highest version is used).
        top_k: `top_k` of the signature built for a `.keras` model (an
            exported SavedModel keeps the one it was exported with).
        batch_size: texts per call.

    Returns:
        A `Predictor`.

    Raises:
        FileNotFoundError: if nothing loadable is at `path`.
        ModelFileError: (a ValueError) if `path` is a file but not a
            loadable `.keras` model.
    """
    path = Path(path)
    if path.is_file():
        model = load_model_file(path)
        function = serving_function(model, top_k=top_k)
        return Predictor(function, model.class_names, "keras", path, batch_size)
    folder = find_saved_model(path)
    loaded = tf.saved_model.load(str(folder))
    signature = loaded.signatures[SIGNATURE_KEY]
    labels = folder / LABELS_FILE
    if labels.is_file():
        names = labels.read_text(encoding="utf-8").splitlines()
    else:  # a SavedModel from elsewhere: number the classes
        width = signature.structured_outputs["probabilities"].shape[-1]
        names = [str(i) for i in range(width or 0)]

    def function(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return signature(**{INPUT_KEY: text})

    # Keeps the loaded object (and its variables) alive with the signature.
    function.loaded = loaded  # type: ignore[attr-defined]
    return Predictor(function, names, "saved_model", folder, batch_size)
