"""save_compact: float16 storage that loads back as an ordinary float32 model."""

import io
import json
import zipfile

import h5py
import keras
import numpy as np
import pytest
from tiny_models import TEXTS, TINY

from recurrent_zoo.models import TextClassifier, save_compact
from recurrent_zoo.models.compact import grid_step

WEIGHTS = "model.weights.h5"


def tiny(**kwargs):
    model = TextClassifier(("neg", "pos", "meh"), **{**TINY, **kwargs})
    model.adapt(TEXTS)
    # Random weights of about a trained model's size everywhere (the wide
    # kernel starts at zero, the idf at its adapted values): zeros and small
    # integers survive float16 exactly and would hide a missing cast.
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:
        variable.assign(rng.normal(0.0, 0.3, variable.shape).astype("float32"))
    return model


def h5_of(path):
    with zipfile.ZipFile(path) as archive:
        return archive.read(WEIGHTS)


def datasets(h5_bytes):
    """{path: (dtype, array, attributes)} of every dataset, and group attrs."""
    found = {}
    with h5py.File(io.BytesIO(h5_bytes), "r") as f:

        def visit(name, item):
            attrs = {k: (item.attrs[k], item.attrs.get_id(k).dtype) for k in item.attrs}
            array = item[()] if isinstance(item, h5py.Dataset) else None
            dtype = item.dtype if isinstance(item, h5py.Dataset) else None
            found[name] = (dtype, array, attrs)

        f.visititems(visit)
    return found


@pytest.fixture(params=[False, True], ids=["deep", "wide_and_deep"])
def saved(request, tmp_path):
    model = tiny(bag_of_words=request.param)
    plain, compact = tmp_path / "plain.keras", tmp_path / "compact.keras"
    model.save(plain)
    size = save_compact(model, compact)
    return model, plain, compact, size


def test_loads_float32_weights_rounded_to_float16(saved):
    model, _, compact, size = saved
    assert size == compact.stat().st_size
    loaded = keras.saving.load_model(compact)
    assert [v.path for v in loaded.weights] == [v.path for v in model.weights]
    if model.bag_of_words:
        idf = loaded.get_layer("bag_of_words").idf
        assert not idf.trainable and idf.path in [v.path for v in loaded.weights]
    for original, restored in zip(model.weights, loaded.weights, strict=True):
        assert restored.dtype == "float32", restored.path
        expected = keras.ops.convert_to_numpy(original).astype(np.float16)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(restored), expected.astype(np.float32)
        )
    # Rounding is real (relative 2^-11 per weight), not a float32 copy.
    embedding = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings)
    restored = keras.ops.convert_to_numpy(loaded.get_layer("embedding").embeddings)
    assert not np.array_equal(embedding, restored)

    # Each weight moves by at most 2^-11 relative; through this tiny network
    # the probabilities move by about 1e-4, well inside 1e-3.
    np.testing.assert_allclose(
        loaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-3, rtol=0
    )
    assert loaded.vectorizer.get_vocabulary() == model.vectorizer.get_vocabulary()


def test_archive_holds_float16_and_is_otherwise_unchanged(saved):
    _, plain, compact, _ = saved
    with zipfile.ZipFile(plain) as a, zipfile.ZipFile(compact) as b:
        assert a.namelist() == b.namelist()
        assert any(name.startswith("assets/") for name in a.namelist())
        assert {i.compress_type for i in b.infolist()} == {zipfile.ZIP_DEFLATED}
        for name in a.namelist():
            if name == "metadata.json":  # a save time, to the second
                saved_a, saved_b = json.loads(a.read(name)), json.loads(b.read(name))
                assert saved_a.keys() == saved_b.keys()
                assert saved_a["keras_version"] == saved_b["keras_version"]
            elif name != WEIGHTS:
                assert a.read(name) == b.read(name), name

    before, after = datasets(h5_of(plain)), datasets(h5_of(compact))
    assert list(after) == list(before)
    cast = 0
    for name, (dtype, array, attrs) in before.items():
        new_dtype, new_array, new_attrs = after[name]
        assert {k: (str(v), t) for k, (v, t) in new_attrs.items()} == {
            k: (str(v), t) for k, (v, t) in attrs.items()
        }, name
        if dtype == np.float32:
            cast += 1
            assert new_dtype == np.float16, name
            np.testing.assert_array_equal(new_array, array.astype(np.float16))
        elif dtype is not None:
            assert new_dtype == dtype, name
            np.testing.assert_array_equal(new_array, array)
        else:
            assert new_dtype is None, name
    assert cast >= 10


def test_half_the_size_when_the_embedding_dominates(tmp_path):
    model = tiny(vocabulary_size=20_000, embedding_dim=32)
    plain, compact = tmp_path / "plain.keras", tmp_path / "compact.keras"
    model.save(plain)
    size = save_compact(model, compact)
    # 20000 x 32 random normals: 2.56 MB as float32, 1.28 MB as float16,
    # which deflate barely shrinks; the tiny vocabulary adds little.
    assert 1.8 < plain.stat().st_size / size < 2.3


def test_other_dtypes_and_the_optimizer_state_are_copied_as_they_are(tmp_path):
    # A compiled model also saves its optimizer: an int64 step count, and
    # Adam's moments, whose second moments sit far below float16's range.
    model = tiny()
    model.compile()
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(7)
    rng = np.random.default_rng(1)
    moments = [v for v in model.optimizer.variables if v.dtype == "float32"]
    for variable in moments:
        variable.assign(rng.uniform(1e-13, 1e-9, variable.shape).astype("float32"))
    save_compact(model, tmp_path / "compact.keras")
    found = datasets(h5_of(tmp_path / "compact.keras"))
    integers = {k: v for k, v in found.items() if v[0] is not None and v[0].kind == "i"}
    assert integers and all(v[0] == np.int64 for v in integers.values())
    # Keras's optimizer saves its step count first.
    assert int(integers["optimizer/vars/0"][1]) == 7
    floats = {
        k.startswith("optimizer/"): v[0]
        for k, v in found.items()
        if v[0] is not None and v[0].kind == "f"
    }
    assert floats == {False: np.dtype(np.float16), True: np.dtype(np.float32)}
    loaded = keras.saving.load_model(tmp_path / "compact.keras")
    again = [v for v in loaded.optimizer.variables if v.dtype == "float32"]
    assert len(again) == len(moments)
    for before, after in zip(moments, again, strict=True):
        np.testing.assert_array_equal(after.numpy(), before.numpy())


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_overflow_names_the_dataset_and_writes_nothing(tmp_path, existing):
    model = tiny()
    embeddings = model.get_layer("embedding").embeddings
    value = keras.ops.convert_to_numpy(embeddings)
    value[5, 3] = 1e6
    embeddings.assign(value)
    path = tmp_path / "compact.keras"
    if existing:
        path.write_bytes(b"previous preset")
    with pytest.raises(ValueError, match="layers/embedding/vars/0") as err:
        save_compact(model, path)
    assert "float16" in str(err.value)
    if existing:
        assert path.read_bytes() == b"previous preset"
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["compact.keras"] if existing else []
    )


def test_65504_fits_and_nan_does_not(tmp_path):
    model = tiny()
    bias = model.get_layer("probabilities").bias
    bias.assign([-65504.0, 0.0, 65504.0])
    save_compact(model, tmp_path / "edge.keras")
    loaded = keras.saving.load_model(tmp_path / "edge.keras")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.get_layer("probabilities").bias),
        [-65504.0, 0.0, 65504.0],
    )
    bias.assign([np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match="layers/dense/vars/1"):
        save_compact(model, tmp_path / "nan.keras")


def test_rejects_a_path_without_keras_suffix(tmp_path):
    with pytest.raises(ValueError, match="model.h5"):
        save_compact(tiny(), tmp_path / "model.h5")
    assert list(tmp_path.iterdir()) == []


def test_loaded_model_fine_tunes(tmp_path):
    # Wide & deep: its own train_step, and a non-trainable idf beside.
    save_compact(tiny(bag_of_words=True), tmp_path / "compact.keras")
    loaded = keras.saving.load_model(tmp_path / "compact.keras")
    # Eager: one step does not repay tracing the train function.
    loaded.compile(learning_rate=1e-2, run_eagerly=True)
    before = keras.ops.convert_to_numpy(loaded.get_layer("embedding").embeddings)
    history = loaded.fit(
        np.asarray(TEXTS, dtype=object),
        np.array([0, 1, 2, 1, 0]),
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])
    after = keras.ops.convert_to_numpy(loaded.get_layer("embedding").embeddings)
    assert after.dtype == np.float32
    # A float32 step of 1e-2 lands between float16 values: the variables
    # really are float32, not float16 values in disguise.
    changed = after != before
    assert changed.any()
    assert not np.array_equal(after, after.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize(
    "values, relative_step, step",
    [
        ([0.3, -0.3, 0.3, -0.3], 0.25, 2.0**-4),  # 0.075 -> 0.0625
        ([1.0, -1.0], 1.0, 1.0),  # a power of two itself is kept
        ([0.5], 0.25, 2.0**-3),
        ([3.0, 4.0], 0.1, 2.0**-2),  # rms sqrt(12.5) = 3.54 -> 0.354
        ([0.0, 0.0], 0.25, 0.0),  # nothing to round
    ],
)
def test_grid_step_is_the_largest_power_of_two_within_the_bound(
    values, relative_step, step
):
    assert grid_step(np.asarray(values, np.float32), relative_step) == step


def test_rounded_variables_load_exactly_on_their_grid(tmp_path):
    model = tiny(bag_of_words=True)
    embeddings = model.get_layer("embedding").embeddings
    signs = np.where(np.arange(embeddings.shape[0] * 8) % 3, 0.3, -0.3)
    value = signs.reshape(embeddings.shape).astype(np.float32)
    # rms stays near 0.3, so the step is 2^-4 = 0.0625 (0.25 x 0.3 = 0.075).
    value[1, :4] = [0.03, 0.04, -0.1, 0.0937]
    embeddings.assign(value)
    wide = model.get_layer("wide_logits").kernel
    wide.assign(np.zeros(wide.shape, np.float32))
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]

    save_compact(
        model,
        tmp_path / "rounded.keras",
        rounded=["embedding/embeddings", "wide_logits/kernel"],
    )

    # The model itself is untouched, bit for bit.
    for variable, old in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), old)
    loaded = keras.saving.load_model(tmp_path / "rounded.keras")
    got = keras.ops.convert_to_numpy(loaded.get_layer("embedding").embeddings)
    assert got.dtype == np.float32
    # By hand: multiples of 0.0625 (0.0937 / 0.0625 = 1.4992 rounds down).
    np.testing.assert_array_equal(got[1, :4], [0.0, 0.0625, -0.125, 0.0625])
    expected = np.where(value > 0, 0.3125, -0.3125)
    expected[1, :4] = got[1, :4]
    np.testing.assert_array_equal(got, expected)
    # An all-zero kernel stays zero; weights not named are only float16.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.get_layer("wide_logits").kernel), 0.0
    )
    for original, restored in zip(model.weights, loaded.weights, strict=True):
        if original.path not in ("embedding/embeddings", "wide_logits/kernel"):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(restored),
                keras.ops.convert_to_numpy(original).astype(np.float16),
            )


def test_rounding_a_vocabulary_sized_embedding_deflates_it(tmp_path):
    model = tiny(vocabulary_size=20_000, embedding_dim=32)
    embeddings = model.get_layer("embedding").embeddings
    rng = np.random.default_rng(2)
    embeddings.assign(rng.normal(0.0, 0.05, embeddings.shape).astype(np.float32))
    half = save_compact(model, tmp_path / "half.keras")
    rounded = save_compact(
        model, tmp_path / "rounded.keras", rounded=["embedding/embeddings"]
    )
    # Step 2^-7 = rms / 6.4: 27 or so distinct values in use, about 5 bits
    # of entropy each against float16's 16 bits of mostly noise.
    assert half / rounded > 1.8
    loaded = keras.saving.load_model(tmp_path / "rounded.keras")
    got = keras.ops.convert_to_numpy(loaded.get_layer("embedding").embeddings)
    original = keras.ops.convert_to_numpy(embeddings)
    assert np.abs(got - original).max() <= 2.0**-8
    assert np.array_equal(got / 2.0**-7, np.round(got / 2.0**-7))


def test_rounding_arguments_are_checked(tmp_path):
    model = tiny()
    with pytest.raises(ValueError, match="'embedding/kernel'"):
        save_compact(model, tmp_path / "a.keras", rounded=["embedding/kernel"])
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=f"relative_step={bad}"):
            save_compact(
                model,
                tmp_path / "a.keras",
                rounded=["embedding/embeddings"],
                relative_step=bad,
            )
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_still_restores_the_model(tmp_path, monkeypatch):
    model = tiny()
    before = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings)
    seen = []

    def full_disk(self, path, *args, **kwargs):
        # The weights are rounded when the save is attempted.
        seen.append(keras.ops.convert_to_numpy(self.get_layer("embedding").embeddings))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(model), "save", full_disk)
    with pytest.raises(OSError):
        save_compact(model, tmp_path / "model.keras", rounded=["embedding/embeddings"])
    assert seen and not np.array_equal(seen[0], before)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings), before
    )
    assert list(tmp_path.iterdir()) == []  # nor is a partial file left
