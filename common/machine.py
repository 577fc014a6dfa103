"""What this machine's CPU can do, for the records that state a time or choose a dtype."""

from __future__ import annotations

import os
import re
from pathlib import Path

_VECTOR_FLAG = re.compile(r"^(avx\w*|amx\w*|fma|f16c|sse4_2)$")
# Settings that make the math libraries act as an older CPU (how the lab emulates a machine
# without AVX512); recorded beside the flags, which they do not change.
ISA_OVERRIDES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The CPU's vector-instruction flags (AVX*, AMX*, FMA, F16C, SSE4.2; x86 Linux, else [])."""
    try:
        flags = re.search(r"^flags\s*:(.*)$", Path(cpuinfo).read_text(), re.M)
    except OSError:
        return []
    return sorted(f for f in (flags.group(1).split() if flags else []) if _VECTOR_FLAG.match(f))


def isa_overrides() -> dict[str, str]:
    return {name: os.environ[name] for name in ISA_OVERRIDES if name in os.environ}
