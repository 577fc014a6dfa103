"""Seeded damage to a file, and the checks every bad-input case ends with."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

SEED = 21
TRUNCATIONS = (0.1, 0.5, 0.97)


def damage(path: Path, kind: str, fraction: float = 0.5) -> None:
    """truncate (at `fraction` of its content, never at a line or document end), random
    (bytes of the same length), empty, utf16 (re-encoded, with its byte-order mark), latin1."""
    path = Path(path)
    data = path.read_bytes()
    if kind == "truncate":
        cut = max(1, int(len(data.rstrip()) * fraction))
        while cut > 1 and data[cut - 1:cut] in (b"\n", b"}", b"]", b" "):
            cut -= 1  # a cut there can leave a shorter file that is still whole
        path.write_bytes(data[:cut])
    elif kind == "random":
        rng = random.Random(f"{SEED}-{path.name}-{len(data)}")
        path.write_bytes(bytes(rng.randrange(256) for _ in range(len(data))))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "utf16":
        path.write_bytes(data.decode("utf-8").encode("utf-16"))
    elif kind == "latin1":
        path.write_bytes(data.decode("utf-8").encode("latin-1"))
    else:
        raise ValueError(kind)


def cases(kinds=("truncate", "random", "empty", "utf16")) -> list[tuple[str, float]]:
    out = []
    for kind in kinds:
        out += [(kind, f) for f in TRUNCATIONS] if kind == "truncate" else [(kind, 0.0)]
    return out


def one_error_line(code: int, err: str, *fragments: str) -> str:
    """The run failed with exactly one line on stderr, `error: ...`, holding `fragments`."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def tree(folder: Path) -> list[str]:
    """Every path under `folder` (relative), to compare before and after a failed run."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []
