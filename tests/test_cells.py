"""The cell registry: what the models, the tuner and the CLI read."""

import subprocess
import sys
from pathlib import Path

import keras
import pytest

from recurrent_zoo.cells import CELLS, build_recurrent_layer, cell_names
from recurrent_zoo.cli import build_parser
from recurrent_zoo.models import CELLS as MODEL_CELLS


@pytest.mark.parametrize("name", list(CELLS))
def test_every_cell_builds_its_layer(name):
    spec = CELLS[name]
    layer = build_recurrent_layer(name, 3, return_sequences=True)
    assert isinstance(layer, spec.layer_class())
    assert isinstance(layer, keras.layers.RNN)
    assert layer.units == 3 and layer.return_sequences
    # The options are what make this cell of the layer (e.g. layer_norm).
    config = layer.cell.get_config()
    for key, value in spec.options.items():
        assert config[key] == value
    assert spec.builtin == layer.__module__.startswith("keras")


def test_unknown_cell_names_the_choices():
    with pytest.raises(ValueError, match="cell='transformer'.*|one of"):
        build_recurrent_layer("transformer", 3)


def test_models_and_commands_offer_exactly_the_registry():
    assert MODEL_CELLS == cell_names()
    for command in ("train", "tune"):
        parser = build_parser()
        subparsers = next(
            a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"
        )
        cell = next(a for a in subparsers.choices[command]._actions if a.dest == "cell")
        assert tuple(cell.choices) == cell_names()


def test_the_registry_imports_no_tensorflow():
    code = (
        "import sys; import recurrent_zoo.cells; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_readme_names_every_cell():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [name for name in CELLS if f"`{name}`" not in readme]
    assert not missing, f"README.md does not mention the cells {missing}"
