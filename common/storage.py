"""Published folders (artifacts, records) and atomic writes; fingerprints; the cache folder.

An artifact folder holds weights + tokenizer + config + `manifest.json`; a record folder
holds a record manifest and its samples. Both are published the same way: a run writes everything into a hidden staging folder next to the final one, writes the
manifest last, then renames the staging folder into place. `os.rename` of a folder is
atomic on POSIX filesystems (NFS included, within one directory), so a reader sees either
no artifact or a complete one, and a run killed at any moment leaves at most a staging
folder behind, never a half-written artifact. The manifest lists every file with its
size, so a folder whose files do not match (copied partially, tampered) is not complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from configs.errors import ConfigError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
CACHE_ENV = "QLAB_CACHE"


def cache_root() -> Path:
    """The lab's cache folder: $QLAB_CACHE, default ~/.cache/quantlab."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "quantlab").expanduser()


def fingerprint(payload: dict) -> str:
    """A stable hash of everything that determines an artifact's weights."""
    canonical = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_manifest(folder: Path) -> Optional[dict]:
    """The manifest of a complete artifact, or None if the folder is not one."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not manifest.get("complete") or manifest.get("schema_version") != SCHEMA_VERSION:
        return None
    for name, size in manifest.get("files", {}).items():
        path = Path(folder) / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    return manifest


def is_complete(folder: Path) -> bool:
    return read_manifest(folder) is not None


def folder_files(folder: Path) -> dict[str, int]:
    """Relative path -> size in bytes, of every file under `folder` except the manifest."""
    folder = Path(folder)
    return {
        str(path.relative_to(folder)): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def ensure_writable_dir(setting: str, folder) -> Path:
    """Create `folder` if needed and check that it can be written, so that a bad path
    fails before the expensive work whose output would go there."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{setting}={str(folder)!r}: cannot create it ({error.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{setting}={str(folder)!r}: not writable")
    return folder


def replace_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary file next to `path`, then rename it over `path`.

    The temporary name is unique per call, so concurrent writers of the same file (parallel
    cells rebuilding one results table) never rename each other's half-written files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: Path, data) -> None:
    """Write JSON to a temporary file, fsync it and rename it over `path`."""

    def write(tmp: Path) -> None:
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())

    replace_atomically(path, write)


@contextmanager
def staging_folder(final: Path) -> Iterator[Path]:
    """A fresh hidden folder next to `final`; removed if the block raises."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(final)
    staging = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, final: Path, manifest: dict, *, replace: bool = False) -> Path:
    """Write the manifest into `staging` and move it to `final` in one rename.

    If a complete artifact already stands at `final` (a concurrent run finished first),
    it is kept and `staging` is discarded, unless `replace` is set.
    """
    staging, final = Path(staging), Path(final)
    manifest = {
        **manifest,
        "schema_version": SCHEMA_VERSION,
        "complete": True,
        "files": folder_files(staging),
        "size_on_disk_bytes": sum(folder_files(staging).values()),
    }
    write_json_atomic(staging / MANIFEST, manifest)
    _fsync_dir(staging)
    if final.exists():
        if is_complete(final) and not replace:
            log.info("a complete artifact appeared at %s meanwhile; keeping it", final)
            shutil.rmtree(staging, ignore_errors=True)
            return final
        _move_aside(final)
    os.rename(staging, final)
    _fsync_dir(final.parent)
    return final


def _move_aside(folder: Path) -> None:
    trash = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_dead_staging(final: Path) -> None:
    """Remove staging folders left by killed runs of this host (never a live writer's)."""
    host = socket.gethostname()
    for staging in final.parent.glob(f".{final.name}.tmp-{host}-*"):
        pid = staging.name.split(f".tmp-{host}-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
