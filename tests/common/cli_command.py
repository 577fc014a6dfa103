"""A stand-in command for tests/common/test_cli.py: `python -m tests.common.cli_command
<mode> <folder>` writes into a staging folder under <folder>, says `ready` on stdout and
waits to be interrupted, the way `python -m quantize` is busy between staging and publishing.

modes: work (the above), fail (a LabError), dispatch (hands `work` to the main environment's
interpreter through common.environments.dispatch, as quantize does for another environment).
With QLAB_TEST_SLOW_START=<seconds>, a dispatched child says `starting` and sleeps before its
handlers are installed (a child still importing when the signal comes)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if os.environ.get("QLAB_TEST_SLOW_START") and os.environ.get("QLAB_DISPATCHED_TO"):
    print("starting", flush=True)
    time.sleep(float(os.environ["QLAB_TEST_SLOW_START"]))

from common.cli import run_command  # noqa: E402 - after the simulated slow start, as a real import would be
from common.environments import dispatch  # noqa: E402
from common.storage import publish, staging_folder  # noqa: E402
from configs.errors import BadFile  # noqa: E402


class _SlowExit:
    """Torch's teardown, in small: an object whose clean-up takes a second while the interpreter
    finalizes its modules, after it has given its signal handlers back to the system."""

    def __del__(self):
        time.sleep(1.0)


_SLOW_EXIT = None


def main(argv: list[str]) -> int:
    mode, folder = argv[0], Path(argv[1])
    if mode == "fail":
        raise BadFile(folder / "config.json", "the model config is not valid JSON", "re-download it")
    if mode == "dispatch":
        return dispatch("main", "tests.common.cli_command", ["work", str(folder)], "the test command")
    global _SLOW_EXIT
    _SLOW_EXIT = _SlowExit()
    with staging_folder(folder / "artifact") as staging:
        (staging / "weights.bin").write_bytes(b"x" * 1000)
        print("ready", flush=True)
        time.sleep(60)
        publish(staging, folder / "artifact", {})
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main, sys.argv[1:]))
