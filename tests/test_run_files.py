"""The one atomic-write helper: all or nothing, nothing left behind."""

import json

import pytest

from recurrent_zoo.run_files import (
    copy_atomically,
    read_json,
    replaced_atomically,
    write_json,
    write_text,
)


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "record.json"
    write_json(target, {"epoch": 1})
    with pytest.raises(RuntimeError), replaced_atomically(target) as partial:
        partial.write_text('{"epoch": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_the_temporary_name_keeps_the_suffix_and_is_unique(tmp_path):
    target = tmp_path / "model.keras"
    with replaced_atomically(target) as first, replaced_atomically(target) as second:
        assert first.suffix == second.suffix == ".keras"
        assert first != second and first.parent == tmp_path
        first.write_bytes(b"one")
        second.write_bytes(b"two")
    assert target.read_bytes() == b"one"  # the outer block finished last
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_formats(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert (tmp_path / "a.json").read_text() == json.dumps(
        {"x": [1, 2]}, indent=2
    ) + "\n"
    write_json(tmp_path / "b.json", {"x": 1}, indent=None)
    assert (tmp_path / "b.json").read_text() == '{"x": 1}'
    write_text(tmp_path / "nested" / "v.txt", "mot\nété")
    assert (tmp_path / "nested" / "v.txt").read_bytes() == "mot\nété".encode()
    copy_atomically(tmp_path / "a.json", tmp_path / "c.json")
    assert read_json(tmp_path / "c.json") == {"x": [1, 2]}
    assert read_json(tmp_path / "missing.json") is None
