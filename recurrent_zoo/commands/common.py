"""Arguments several subcommands share."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from recurrent_zoo.catalog import CORPORA, REMOVABLE

DEFAULT_DATA = "../shared/data"


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=os.environ.get("RECURRENT_ZOO_DATA", DEFAULT_DATA),
        help=(
            "the folder holding aclImdb.tar.gz / 20news-bydate.tar.gz, one of "
            "those archives, or an extracted corpus; a forecaster: co2, elnino, "
            "sunspots or a CSV file (default: $RECURRENT_ZOO_DATA "
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


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """`--data` and `--corpus`: what `train` and `tune` read."""
    add_data_argument(parser)
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        help="folder: one folder per class; table: CSV / JSON lines with text "
        "and label columns (default: the task's)",
    )


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(parts) - set(REMOVABLE))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"--remove takes {','.join(REMOVABLE)}; got {','.join(unknown)}"
        )
    return parts


def add_remove_arguments(parser: argparse.ArgumentParser) -> None:
    """`--remove headers,footers,quotes` and one `--remove-PART` flag each."""
    group = parser.add_argument_group("20 Newsgroups: parts of each post to strip")
    group.add_argument(
        "--remove",
        type=_parts,
        default=(),
        metavar="PARTS",
        help="comma-separated: headers,footers,quotes",
    )
    for part in REMOVABLE:
        group.add_argument(f"--remove-{part}", action="store_true")


def removed_parts(args: argparse.Namespace) -> tuple[str, ...]:
    """The union of `--remove` and the `--remove-PART` flags, sorted."""
    flags = {part for part in REMOVABLE if getattr(args, f"remove_{part}")}
    return tuple(sorted(flags | set(args.remove)))
