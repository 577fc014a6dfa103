"""What "the same results" means for two sweeps run on different folders (workers, a fresh
process per cell, Slurm batches): every artifact file and every record's samples
byte-identical, and every record manifest identical but for what measures time or memory
and the folders' own paths."""

from __future__ import annotations

import json
from pathlib import Path

# Wall-clock and memory measurements: they differ from run to run whichever way a cell ran.
SPEED_MEASURED = ("by_batch", "load_seconds", "peak_memory_bytes")


def record_view(folder: Path, root: Path) -> dict:
    """A record manifest without its measurements, with `root` written as <root>."""
    text = (folder / "manifest.json").read_text().replace(str(root.resolve()), "<root>").replace(str(root), "<root>")
    record = json.loads(text)
    record.pop("eval_seconds", None)
    for key in SPEED_MEASURED:
        (record.get("speed") or {}).pop(key, None)
    return record


def published(root: Path, kind: str) -> list[Path]:
    pattern = (root / "artifacts").glob("*/*") if kind == "artifacts" else (root / "results" / "records").glob("*/*")
    return sorted(p.relative_to(root) for p in pattern if not p.name.startswith("."))


def differences(a: Path, b: Path) -> list[str]:
    """Every way in which the outputs under `a` and `b` differ (empty: the same results)."""
    out = []
    for kind in ("artifacts", "records"):
        if published(a, kind) != published(b, kind):
            out.append(f"{kind}: {published(a, kind)} vs {published(b, kind)}")
    for folder in published(a, "artifacts"):
        for path in sorted((a / folder).rglob("*")):
            other = b / folder / path.relative_to(a / folder)
            if path.is_file() and path.name != "manifest.json" and (not other.is_file() or other.read_bytes() != path.read_bytes()):
                out.append(f"artifact file differs: {folder / path.relative_to(a / folder)}")
    for folder in published(a, "records"):
        if not (b / folder).is_dir():
            continue
        if (a / folder / "samples.jsonl").read_bytes() != (b / folder / "samples.jsonl").read_bytes():
            out.append(f"samples differ: {folder}")
        view_a, view_b = record_view(a / folder, a), record_view(b / folder, b)
        if view_a != view_b:
            keys = sorted(k for k in set(view_a) | set(view_b) if view_a.get(k) != view_b.get(k))
            out.append(f"record differs: {folder} ({', '.join(keys)})")
    return out
