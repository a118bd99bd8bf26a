"""Arguments several subcommands share."""

from __future__ import annotations

import argparse
import os

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
