"""The `recurrent-zoo` command line: `recurrent-zoo COMMAND --help` for each."""

from __future__ import annotations

import argparse
import os
import sys

from recurrent_zoo.commands import command_modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recurrent-zoo", description="Recurrent layers and text classifiers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in command_modules().items():
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
