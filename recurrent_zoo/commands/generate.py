"""`recurrent-zoo generate`: continue a prompt with a character language model.

Prints the prompt followed by the generated characters (`--json`: both
apart, with the settings). The model reads the prompt once, then adds one
character per recurrent step (`CharLanguageModel.generate`); the same
`--seed` gives the same text.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "continue a prompt with a .keras character language model (train char_lm)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model file, the prompt and the sampling settings."""
    parser.add_argument("model", help="a .keras file written by `train char_lm`")
    parser.add_argument(
        "--prompt", default="", help="the text to continue (default: none)"
    )
    parser.add_argument(
        "--length", type=int, default=200, help="characters to generate (200)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divides the logits: lower is more conservative; 0 is greedy (1.0)",
    )
    parser.add_argument(
        "--top-k", type=int, help="draw among the k most likely characters only"
    )
    parser.add_argument(
        "--seed", type=int, help="seeds the draws: the same seed, the same text"
    )
    parser.add_argument(
        "--json", action="store_true", help="print prompt, text and settings as JSON"
    )


def _write(text: str) -> None:
    # A prompt of undecodable bytes holds lone surrogates, which no
    # terminal can print: they are shown as U+FFFD.
    print(text.encode("utf-8", errors="surrogateescape").decode("utf-8", "replace"))


def run(args: argparse.Namespace) -> int:
    """Prints the continuation; 2 with a one-line error on bad input."""
    from recurrent_zoo.models import CharLanguageModel
    from recurrent_zoo.models.loading import load_model_file

    try:
        model = load_model_file(args.model)
        if not isinstance(model, CharLanguageModel):
            raise ValueError(
                f"{args.model} holds a {type(model).__name__}, not a character "
                "language model (train one with `recurrent-zoo train char_lm`)"
            )
        text = model.generate(
            args.prompt,
            args.length,
            temperature=args.temperature,
            top_k=args.top_k,
            seed=args.seed,
        )
    except ValueError as err:
        print(f"recurrent-zoo generate: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        settings = {
            "model": args.model,
            "prompt": args.prompt,
            "text": text,
            "length": args.length,
            "temperature": args.temperature,
            "top_k": args.top_k,
            "seed": args.seed,
        }
        _write(json.dumps(settings))
    else:
        _write(args.prompt + text)
    return 0
