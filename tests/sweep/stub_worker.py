"""A stand-in for `python -m evaluate worker` in the pool's fast tests: it speaks the
worker's protocol and does what the cell's model name says, in no time.

  ok      prints a line, replies done          raise  prints a traceback, replies failed
  segv    dies by SIGSEGV mid-cell             kill   dies by SIGKILL mid-cell (the OOM killer)
  sleep   sleeps until signalled (SIGINT/SIGTERM: dies by it, as the real worker does)
  nap     sleeps 3 s, then replies done (long enough for a second worker to start)
  tmp     writes a file into its temporary folder, then dies by SIGKILL
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from sweep.worker import REPLY


def main() -> None:
    for line in sys.stdin.buffer:
        request = json.loads(line)
        what = request["cell"]["model"]
        print(f"stub {os.getpid()} runs {what}", flush=True)
        if what == "tmp":
            Path(request["tmp"]).mkdir(parents=True, exist_ok=True)
            (Path(request["tmp"]) / "lab-tasks-x").write_text("left by a killed cell")
            os.kill(os.getpid(), signal.SIGKILL)
        if what in ("segv", "kill"):
            os.kill(os.getpid(), signal.SIGSEGV if what == "segv" else signal.SIGKILL)
        if what == "sleep":
            time.sleep(120)
        if what == "nap":
            time.sleep(3)
        if what == "raise":
            print("Traceback (most recent call last):\nValueError: broken", flush=True)
        status = {"status": "failed", "reason": "ValueError: broken"} if what == "raise" else {"status": "done"}
        sys.stdout.buffer.write(b"\n" + REPLY + json.dumps({"status": status, "pid": os.getpid(), "seconds": 0.0}).encode()
                                + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
