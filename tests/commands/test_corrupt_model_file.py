"""Every command that reads a model file ends a bad one in one line.

A truncated download, a file of another format, and a zip that is not a
Keras model: each command exits 2 with one stderr line naming the file and
what is wrong, never a traceback.
"""

import zipfile

import pytest

from recurrent_zoo.cli import main
from recurrent_zoo.models.loading import ModelFileError, load_model_file
from recurrent_zoo.models.registry import PRESET_DIR

SHIPPED = PRESET_DIR / "imdb_sentiment.keras"


def _bad_files(folder):
    data = SHIPPED.read_bytes()
    truncated = folder / "truncated.keras"
    truncated.write_bytes(data[: len(data) // 2])
    text = folder / "notes.keras"
    text.write_text("not a model\n")
    other = folder / "other.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("weights.bin", b"\0" * 16)
    # Intact archive, damaged member: one byte flipped inside the weights.
    flipped = bytearray(data)
    with zipfile.ZipFile(SHIPPED) as archive:
        info = archive.getinfo("model.weights.h5")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    flipped[middle] ^= 0xFF
    damaged = folder / "damaged.keras"
    damaged.write_bytes(bytes(flipped))
    return {"truncated": truncated, "text": text, "other": other, "damaged": damaged}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad_models"))


COMMANDS = {
    "predict": lambda path, tmp: ["predict", str(path), "a fine film"],
    "evaluate": lambda path, tmp: ["evaluate", str(path), "--data", str(tmp)],
    "export": lambda path, tmp: ["export", str(path), str(tmp / "out")],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["truncated", "text", "other", "damaged"])
def test_a_bad_model_file_is_one_line(command, kind, bad_files, tmp_path, capsys):
    path = bad_files[kind]
    assert main(COMMANDS[command](path, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and "Traceback" not in err


def test_the_loader_says_what_is_wrong(bad_files, tmp_path):
    expected = {
        "truncated": "not a zip archive",
        "text": "not a zip archive",
        "other": "no config.json",
        "damaged": "fails its checksum",
    }
    for kind, message in expected.items():
        with pytest.raises(ModelFileError, match=message):
            load_model_file(bad_files[kind])
    with pytest.raises(ModelFileError, match="no such file"):
        load_model_file(tmp_path / "missing.keras")
    assert load_model_file(SHIPPED).class_names == ("neg", "pos")
