"""Published folders (artifacts, records) and atomic writes; fingerprints; the cache folder.

An artifact folder holds weights + tokenizer + config + `manifest.json`; a record folder
holds a record manifest and its samples. Both are published the same way: a run writes everything into a hidden staging folder next to the final one, writes the
manifest last, then renames the staging folder into place. `os.rename` of a folder is
atomic on POSIX filesystems (NFS included, within one directory), so a reader sees either
no artifact or a complete one, and a run killed at any moment leaves at most a staging
folder behind, never a half-written artifact. The manifest lists every file with its
size, so a folder whose files do not match (copied partially, tampered) is not complete;
`folder_problem` says which file and how, for the one line a reader prints.

A write that fails for lack of space (ENOSPC, a quota, or torch's zip writer running out
mid-file) is a `DiskFull` error naming the folder and the write; since every write goes to
a temporary name first, nothing half-written stays behind. Folders are created when the
first file is written into them, not when a run starts (`ensure_writable_dir` only checks),
so a run that fails before writing leaves no empty folders; temporary folders of a run that
was killed are removed by the next run that writes next to them.
"""

from __future__ import annotations

import errno
import fcntl
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

from common.files import decode_text, file_problem, role
from configs.errors import ConfigError, LabError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
CACHE_ENV = "QLAB_CACHE"


def cache_root() -> Path:
    """The lab's cache folder: $QLAB_CACHE, default ~/.cache/quantlab."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "quantlab").expanduser()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


REMEMBER_FROM_BYTES = 64 << 20  # smaller files are quicker to hash than to look up
HASH_NOTES = "file-hashes"  # cache_root()/<this>/<hash of the real path>.json


def remembered_sha256(path: Path) -> str:
    """`file_sha256`, remembered in the lab cache for a large file and read again only once
    the file changed: a 7B checkpoint or its GGUF is not re-read for every level quantized
    from it. Changed means another real path, device, inode, size, mtime or ctime (which no
    tool can set back: a write, chmod or rename changes it); a digest is kept only if the
    file did not change while it was read. In-place damage that keeps all of these (bit
    rot) goes unnoticed."""
    if Path(path).stat().st_size < REMEMBER_FROM_BYTES:
        return file_sha256(path)
    note, before = _hash_note(path)
    try:
        saved = json.loads(note.read_text())
        if saved["stamp"] == before:
            return saved["sha256"]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: hash again
        pass
    digest = file_sha256(path)
    if _hash_note(path)[1] == before:  # else it changed while being read: do not remember a mix
        _write_note(note, before, digest)
    return digest


def remember_sha256(path: Path, digest: str) -> None:
    """Note `digest` as the sha256 of the file now at `path` (just written by the caller)."""
    try:
        if Path(path).stat().st_size >= REMEMBER_FROM_BYTES:
            _write_note(*_hash_note(path), digest)
    except OSError as error:  # remembering only saves time
        log.debug("could not remember the sha256 of %s: %s", path, error)


def _hash_note(path: Path) -> tuple[Path, dict]:
    real = Path(os.path.realpath(path))
    stat = real.stat()
    stamp = {"path": str(real), "device": stat.st_dev, "inode": stat.st_ino, "bytes": stat.st_size,
             "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}
    return cache_root() / HASH_NOTES / f"{hashlib.sha256(str(real).encode()).hexdigest()[:32]}.json", stamp


def _write_note(note: Path, stamp: dict, digest: str) -> None:
    try:
        write_json_atomic(note, {"stamp": stamp, "sha256": digest})
    except (OSError, LabError) as error:  # remembering only saves time
        log.debug("could not remember a sha256 in %s: %s", note, error)


def fingerprint(payload: dict) -> str:
    """A stable hash of everything that determines an artifact's weights."""
    canonical = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_manifest(folder: Path) -> Optional[dict]:
    """The manifest of a complete artifact, or None if the folder is not one."""
    return check_manifest(folder)[0]


def check_manifest(folder: Path) -> tuple[Optional[dict], Optional[str]]:
    """(manifest, None) for a complete folder (its manifest whole, every file it lists there
    with its size); else (None, what is wrong, in words: which file, and how)."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not folder.is_dir():
            return None, "does not exist" if not folder.exists() else "is not a folder"
        return None, f"has no {MANIFEST} (not written by the lab, or its run did not finish)"
    except OSError as error:
        return None, f"{MANIFEST} cannot be read ({error.strerror})"
    text, problem = decode_text(data)
    manifest = None
    try:
        manifest = json.loads(text) if text is not None else None
    except ValueError:
        problem = "is not valid JSON (truncated or damaged)"
    if problem or not isinstance(manifest, dict):
        return None, f"its {MANIFEST} {problem or 'is not a JSON object'}"
    if manifest.get("schema_version") != SCHEMA_VERSION:
        return None, f"its {MANIFEST} has schema version {manifest.get('schema_version')!r}, not {SCHEMA_VERSION}"
    if not manifest.get("complete"):
        return None, f"its {MANIFEST} does not mark it complete"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return None, f"its {MANIFEST} lists no files"
    for name, size in files.items():
        file = folder / name
        if not file.is_file():
            return None, f"{role(file)} {name}, listed in its {MANIFEST}, is missing"
        if file.stat().st_size != size:
            return None, (f"{role(file)} {name} is {file.stat().st_size:,} bytes, its {MANIFEST} says {size:,} "
                          "(truncated or replaced)")
    return manifest, None


def folder_problem(folder: Path) -> Optional[str]:
    """What is wrong with a published folder, or None: its manifest and listed files as
    `check_manifest` sees them, then each listed file's content as its format says (a
    safetensors header, a torch.save archive, JSON; a JSON lines file by its first and last
    lines, so that reading every record of a large results store stays cheap; see
    common.files). Sizes are in the manifest, so a truncated file is always found."""
    manifest, problem = check_manifest(folder)
    if problem:
        return problem
    for name in manifest["files"]:
        if (problem := file_problem(Path(folder) / name, quick=True)) is not None:
            return f"{role(Path(name))} {name} {problem}"
    return None


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
    """Check that `folder` can be written (created, if it does not exist), so that a bad
    path fails before the expensive work whose output would go there. Nothing is left
    behind: folders made to find out are removed again, and the run creates them when it
    writes its first file (a run that fails before that leaves no empty folder)."""
    folder = Path(folder).expanduser()
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{setting}={str(folder)!r}: not writable")
        return folder
    created = []
    try:
        for parent in reversed([folder, *folder.parents]):
            if not parent.is_dir():
                parent.mkdir()
                created.append(parent)
    except OSError as error:
        raise ConfigError(f"{setting}={str(folder)!r}: cannot create it ({error.strerror})") from None
    finally:
        for made in reversed(created):
            _remove_if_empty(made)
    return folder


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (a concurrent run wrote there meanwhile) or already gone
        pass


class DiskFull(LabError):
    """A write failed for lack of space (or quota): one line naming the folder and the write.
    Whatever was being written was under a temporary name and is removed."""


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_WORDS = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")
# torch.save's zip writer reports a short write without errno ("[enforce fail at
# inline_container.cc] . unexpected pos", "PytorchStreamWriter failed writing file"): a
# failure of this kind counts as a full disk when the disk is (nearly) full.
_SHORT_WRITE_WORDS = ("unexpected pos", "pytorchstreamwriter failed", "file write failed")
LOW_SPACE_BYTES = 1 << 20


def is_disk_full(error: BaseException, folder: Optional[Path] = None) -> bool:
    """Whether `error` (or an error it was raised from) says that space ran out."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
            return True
        text = str(error).lower()
        if any(words in text for words in _NO_SPACE_WORDS):
            return True
        if folder is not None and any(words in text for words in _SHORT_WRITE_WORDS) and _free_bytes(folder) < LOW_SPACE_BYTES:
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def writing(what: str, folder: Path, staging: Optional[Path] = None) -> Iterator[None]:
    """Turn a failure for lack of space inside the block into one `DiskFull` line naming
    `what` was written and `folder`, and the file, where the error says which (relative to
    `staging`, the temporary folder being filled). Other errors pass through unchanged."""
    try:
        yield
    except LabError:
        raise
    except Exception as error:
        folder = Path(folder)
        if not is_disk_full(error, folder):
            raise
        failed = _failed_file(error, staging)
        file = f" ({failed})" if failed else ""
        raise DiskFull(f"no space left on device: writing {what}{file} into {folder} failed "
                       f"({_free_bytes(folder):,} bytes free there); nothing half-written was kept; "
                       "free some space and rerun") from None


def _failed_file(error: BaseException, staging: Optional[Path]) -> Optional[str]:
    """The file whose write failed, as far as the error says (libraries remove it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        filename = getattr(error, "filename", None)
        if isinstance(error, OSError) and filename:
            path = Path(filename)
            return str(path.relative_to(staging)) if staging is not None and path.is_relative_to(staging) else str(path)
        if "safetensor" in type(error).__name__.lower():
            return "a .safetensors weights file"
        if any(words in str(error).lower() for words in _SHORT_WRITE_WORDS):
            return "a torch.save file"
        error = error.__cause__ or error.__context__
    return None


def _existing(folder: Path) -> Path:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(_existing(folder)).free
    except OSError:
        return -1


def replace_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary file next to `path`, then rename it over `path`.

    The temporary name is unique per call, so concurrent writers of the same file (parallel
    cells rebuilding one results table) never rename each other's half-written files."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    staged = path.parent.name.startswith(".") and ".tmp-" in path.parent.name  # a file of a staging folder
    what, where = (f"{path.name} of {path.parent.name[1:].split('.tmp-')[0]}", path.parent.parent) if staged else (path.name, path.parent)
    with writing(what, where):
        path.parent.mkdir(parents=True, exist_ok=True)
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
    """A fresh hidden folder next to `final`; removed if the block raises (an interrupt
    included), with the parent folders it had to create if they are left empty."""
    final = Path(final)
    missing = [p for p in [final.parent, *final.parent.parents] if not p.exists()]
    if not missing:
        _remove_dead_staging(final)
    staging = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with writing(f"a temporary folder for {final.name}", final.parent):
            staging.mkdir(parents=True)
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for made in missing:  # deepest first
            _remove_if_empty(made)
        raise


@contextmanager
def scratch_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A temporary folder `<parent>/.<prefix>.tmp-<host>-<pid>-<id>` for files a run needs
    only while it runs (under the lab's folders, not the system's temporary directory);
    removed when the block ends, and by the next run if a kill left it."""
    parent = Path(parent)
    missing = [p for p in [parent, *parent.parents] if not p.exists()]
    with staging_folder(parent / prefix) as folder:
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
        for made in missing:  # the folders this run created, if nothing else was written there
            _remove_if_empty(made)


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
    """Remove staging folders left by killed runs of this host (never a live writer's), and
    old folders a replacing run had moved aside but not yet deleted when it was killed."""
    host = socket.gethostname()
    for staging in final.parent.glob(f".{final.name}.tmp-{host}-*"):
        pid = staging.name.split(f".tmp-{host}-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)
    for old in final.parent.glob(f".{final.name}.old-*"):
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) for the block: one
    process at a time does what it guards (flock: released by the kernel if the holder dies).
    A process that has to wait says so once, naming the lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for %s: another process holds it (it is doing the same work; this one will "
                     "reuse its result)", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0; someone else's counts as alive)."""
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
