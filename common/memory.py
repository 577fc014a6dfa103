"""Peak and current resident memory of this process.

Linux's ``getrusage().ru_maxrss`` survives ``fork`` + ``exec``: a subprocess started by a
parent that had grown to 1 GB reports at least 1 GB however little it used itself (a
quantize run started from a long test session recorded the session's size). ``VmHWM`` in
/proc/self/status belongs to the process's own address space, so it starts fresh at exec,
and a long-lived worker can reset it between cells."""

from __future__ import annotations

import contextlib
import resource
from typing import Optional


def peak_rss_bytes() -> int:
    """The most resident memory this process has held (since start or the last reset)."""
    peak = _status_field("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> Optional[int]:
    return _status_field("VmRSS")


def reset_peak_rss() -> None:
    """Start peak_rss_bytes() again from the current size (Linux >= 4.0; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")


def _status_field(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
