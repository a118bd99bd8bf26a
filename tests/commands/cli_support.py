"""Running `recurrent-zoo` in process, as the command-line tests do."""

import contextlib
import io

from recurrent_zoo.cli import main


def run_cli(argv):
    """(exit code, stdout, stderr) of `recurrent-zoo ARGV`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def fails_in_one_line(argv, command, message):
    """The command exits 2 with one line, naming itself and `message`."""
    code, _, stderr = run_cli(argv)
    assert code == 2, stderr
    assert stderr.startswith(f"recurrent-zoo {command}: error: ")
    assert message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
