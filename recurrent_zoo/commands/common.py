"""Arguments several subcommands share."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

DEFAULT_DATA = "../shared/data"


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=os.environ.get("RECURRENT_ZOO_DATA", DEFAULT_DATA),
        help=(
            "the folder holding aclImdb.tar.gz / 20news-bydate.tar.gz, one of "
            "those archives, or an extracted corpus (default: $RECURRENT_ZOO_DATA "
            f"or {DEFAULT_DATA})"
        ),
    )


def comma_separated(cast: type, example: str) -> Callable[[str], tuple]:
    """An argparse `type` for lists like `64,64`, with `example` in the error."""

    def parse(text: str) -> tuple:
        try:
            return tuple(cast(v) for v in text.split(","))
        except ValueError as err:
            message = f"expected values like {example}: {text!r}"
            raise argparse.ArgumentTypeError(message) from err

    return parse
