"""`recurrent-zoo predict`: classify texts with a `.keras` model or a SavedModel."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from typing import Any, BinaryIO

HELP = "classify texts (arguments, stdin lines or JSONL) with a model or SavedModel"

_PREVIEW = 60
_SPACE = re.compile(r"\s+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # argparse before Python 3.13 stops filling TEXT once an option follows
    # MODEL, so `predict MODEL --json "a"` fails; say where options may go.
    parser.epilog = (
        "Options go before MODEL or after the texts: "
        "recurrent-zoo predict --json model.keras 'a review' 'another'"
    )
    parser.add_argument(
        "model",
        help=(
            "a .keras file, an exported SavedModel folder, or an export's base "
            "path (its highest version is used)"
        ),
    )
    parser.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to classify; none or '-' reads stdin, one text per line",
    )
    parser.add_argument(
        "--jsonl",
        metavar="FILE",
        help="read texts from the 'text' field of each line of FILE ('-': stdin)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per text instead of tab-separated columns",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=0,
        metavar="K",
        help="also print the K most probable classes",
    )
    parser.add_argument("--batch-size", type=int, default=256)


def _stdin() -> BinaryIO:
    return sys.stdin.buffer


def _read_lines(stream: BinaryIO) -> list[bytes]:
    # Bytes, not str: a line that is not UTF-8 must reach the model (which
    # repairs it), not stop the whole run with a UnicodeDecodeError.
    return stream.read().splitlines()


def _read_jsonl(stream: BinaryIO, where: str) -> list[str]:
    texts = []
    for number, line in enumerate(stream.read().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8", "replace"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}:{number}: not JSON: {err}") from err
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{where}:{number}: expected an object with 'text'")
        texts.append(record["text"])
    return texts


def read_texts(args: argparse.Namespace) -> list[str | bytes]:
    """The texts to classify, from `--jsonl`, the arguments, or stdin.

    Args:
        args: the parsed command line.

    Returns:
        The texts, in input order (stdin lines as raw bytes).

    Raises:
        ValueError: on a malformed JSONL line, on texts given both as
            arguments and with `--jsonl`, or when stdin is a terminal and no
            texts were given.
    """
    # A lone "-" means stdin; among other texts it is just a text.
    from_args = [] if args.texts == ["-"] else list(args.texts)
    if args.jsonl is not None:
        if from_args:
            raise ValueError("give texts as arguments or with --jsonl, not both")
        if args.jsonl == "-":
            return _read_jsonl(_stdin(), "<stdin>")
        with open(args.jsonl, "rb") as stream:
            return _read_jsonl(stream, args.jsonl)
    if from_args:
        return from_args
    if sys.stdin.isatty():
        raise ValueError("no texts: give them as arguments, on stdin or with --jsonl")
    return list(_read_lines(_stdin()))


def _preview(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def format_rows(
    outputs: dict[str, Any],
    class_names: tuple[str, ...],
    texts: list[str | bytes],
    as_json: bool,
    top_k: int,
) -> Iterable[str]:
    """One output line per text.

    Args:
        outputs: a `Predictor`'s outputs for `texts`.
        class_names: the class names, in label-id order.
        texts: the inputs, for the preview column.
        as_json: JSON objects instead of tab-separated columns.
        top_k: how many best classes to add (0: none).

    Returns:
        The lines, without newlines.
    """
    probabilities = outputs["probabilities"]
    k = min(top_k, len(class_names))
    for i, row in enumerate(probabilities):
        best = sorted(range(len(row)), key=lambda c: -row[c])[:k]
        label = str(outputs["label"][i])
        probability = float(outputs["probability"][i])
        if as_json:
            record: dict[str, Any] = {
                "index": i,
                "label": label,
                "label_id": int(outputs["label_id"][i]),
                "probability": round(probability, 6),
                "probabilities": {
                    name: round(float(p), 6)
                    for name, p in zip(class_names, row, strict=True)
                },
            }
            if k:
                record["top_k"] = [
                    {"label": class_names[c], "probability": round(float(row[c]), 6)}
                    for c in best
                ]
            yield json.dumps(record, ensure_ascii=False)
        else:
            columns = [label, f"{probability:.4f}"]
            if k:
                columns.append(" ".join(f"{class_names[c]}={row[c]:.4f}" for c in best))
            columns.append(_preview(texts[i]))
            yield "\t".join(columns)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.top_k < 0 or args.batch_size < 1:
        print("predict: --top-k must be >= 0 and --batch-size >= 1", file=sys.stderr)
        return 2
    if not Path(args.model).exists():
        print(f"predict: no model at {args.model}", file=sys.stderr)
        return 2
    try:
        texts = read_texts(args)
    except (OSError, ValueError) as err:
        print(f"predict: {err}", file=sys.stderr)
        return 2

    from recurrent_zoo.export import load_predictor

    try:
        predictor = load_predictor(args.model, batch_size=args.batch_size)
    # TypeError: a model that is no classifier (a language model, say).
    except (FileNotFoundError, TypeError, ValueError) as err:
        print(f"predict: {err}", file=sys.stderr)
        return 2
    outputs = predictor(texts)
    for line in format_rows(
        outputs, predictor.class_names, texts, args.json, args.top_k
    ):
        print(line)
    return 0
