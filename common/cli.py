"""What every command does around its work: one line for a failure the user can act on, and
a clean stop on Ctrl-C (SIGINT) or SIGTERM.

`run_command(main, argv)` is the body of a command module's `if __name__ == "__main__"`:
  - a `LabError` (a bad setting, a damaged input file, a full disk) is `error: <one line>`
    on stderr and its exit code (2 for settings and files, 1 otherwise); an error that says
    the disk is full, raised by a write outside the lab's own helpers (a library's cache,
    wrapped in its own error types or not), is said the same way;
  - SIGINT and SIGTERM raise `Interrupted` in the main thread, which unwinds the run through
    the same `finally`/`except` blocks that remove temporary files and staging folders
    (`common.storage`), then `interrupted; nothing half-written was kept; rerun to resume`
    and exit code 130 or 143 (128 + the signal, as a shell reports a killed command).
    Further signals while it unwinds are ignored, so the cleanup finishes. A signal the
    command was started with ignored (a background job of a non-interactive shell, nohup)
    stays ignored.
A run handed to another environment (`common.environments.dispatch`) gets the signal too
and says the line itself; the parent then exits with its code and says nothing more.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Callable, Sequence

from common.storage import is_disk_full
from configs.errors import LabError

INTERRUPTED = "interrupted; nothing half-written was kept; rerun to resume"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A KeyboardInterrupt, so that code which already lets Ctrl-C
    through (`except Exception` does not catch it) treats SIGTERM alike."""

    def __init__(self, signum: int, said: bool = False):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.said = said  # the line was already printed (by a child the run was handed to)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _on_signal(signum, frame):
    # The run now unwinds: a second Ctrl-C (or the one `dispatch` forwards to a child that had
    # it from the terminal already) must not cut its cleanup short. SIG_IGN, not a Python
    # function: the interpreter resets its own handlers to the default when it finalizes, and
    # a signal arriving then would kill the process after it said its line.
    for other in SIGNALS:
        if signal.getsignal(other) is _on_signal:
            signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise `Interrupted` (main thread only; not where they were ignored
    at start). Signals that `dispatch` blocked while starting this process are let through
    now that they can be handled."""
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def run_command(main: Callable[[list[str]], int], argv: Sequence[str]) -> int:
    """`main(argv)`'s exit code, with failures and interrupts said in one line (see above)."""
    try:
        install_signal_handlers()
        return main(list(argv))
    except Interrupted as interrupt:
        return _last_word(None if interrupt.said else INTERRUPTED, interrupt.exit_code)
    except KeyboardInterrupt:  # SIGINT before the handlers were installed
        return _last_word(INTERRUPTED, 128 + signal.SIGINT)
    except LabError as error:
        return _last_word(f"error: {error}", error.exit_code)
    except Exception as error:  # noqa: BLE001 - only a full disk is said here; anything else keeps its traceback
        if not is_disk_full(error):
            raise
        filename = next((e.filename for e in error_chain(error) if isinstance(e, OSError) and e.filename), None)
        where = f" writing {filename}" if filename else ""
        return _last_word(f"error: no space left on device{where}: free some space and rerun", 1)


def error_chain(error: BaseException):
    """`error`, then what it was raised from or during, each once."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _last_word(line, code: int) -> int:
    """Print the one line; libraries' exit-time INFO logs (torch's cache statistics) would
    otherwise follow it."""
    if line:
        print(line, file=sys.stderr, flush=True)
    logging.disable(logging.INFO)
    return code
