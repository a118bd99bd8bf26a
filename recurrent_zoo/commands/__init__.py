"""One module per `recurrent-zoo` subcommand.

Each module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`. They import TensorFlow and the package's heavy parts
inside `run`, so `recurrent-zoo --help` stays instant.
"""

# Order is the order `recurrent-zoo --help` lists them in.
COMMANDS: tuple[str, ...] = ("demo",)
