"""Peak memory is the process's own, not inherited from whoever started it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from tests.conftest import REPO_ROOT

MB = 1024 * 1024
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def _touched(size: int) -> bytearray:
    block = bytearray(size)
    for offset in range(0, size, 4096):
        block[offset] = 1
    return block


@linux_only
def test_a_subprocess_does_not_report_its_parents_peak():
    held = _touched(400 * MB)
    child = subprocess.run([sys.executable, "-c", "from common.memory import peak_rss_bytes; print(peak_rss_bytes())"],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert peak_rss_bytes() >= 400 * MB
    assert int(child.stdout) < 200 * MB, "the child's peak includes the parent's memory (ru_maxrss survives exec)"
    del held


@linux_only
def test_reset_starts_the_peak_again_from_the_current_size():
    block = _touched(300 * MB)
    assert peak_rss_bytes() >= current_rss_bytes() >= 300 * MB
    del block
    reset_peak_rss()
    assert peak_rss_bytes() < current_rss_bytes() + 100 * MB
