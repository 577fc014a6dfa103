"""Artifact folders are published atomically and judged complete only by their manifest."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import common.storage as storage
from common.storage import (MANIFEST, DiskFull, check_manifest, ensure_writable_dir, fingerprint, folder_problem,
                            is_disk_full, publish, read_manifest, replace_atomically, scratch_folder, staging_folder)
from configs.errors import ConfigError


def _write_weights(folder, payload=b"x" * 1000):
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "config.json").write_text("{}")


def test_publish_moves_a_complete_folder_into_place(tmp_path):
    final = tmp_path / "art"
    with staging_folder(final) as staging:
        _write_weights(staging)
        assert not final.exists()
        publish(staging, final, {"label": "x"})
    manifest = read_manifest(final)
    assert manifest["label"] == "x"
    assert manifest["files"] == {"config.json": 2, "model.safetensors": 1000}
    assert manifest["size_on_disk_bytes"] == 1002
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def test_folder_without_manifest_is_not_complete(tmp_path):
    _write_weights(tmp_path)
    assert read_manifest(tmp_path) is None


@pytest.mark.parametrize("damage", ["truncate_weights", "delete_weights", "corrupt_manifest", "incomplete_flag"])
def test_damaged_artifact_is_not_complete(tmp_path, damage):
    final = tmp_path / "art"
    with staging_folder(final) as staging:
        _write_weights(staging)
        publish(staging, final, {})
    assert read_manifest(final) is not None
    if damage == "truncate_weights":
        (final / "model.safetensors").write_bytes(b"x" * 10)
    elif damage == "delete_weights":
        (final / "model.safetensors").unlink()
    elif damage == "corrupt_manifest":
        (final / MANIFEST).write_text('{"complete": tr')
    else:
        manifest = json.loads((final / MANIFEST).read_text())
        (final / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    assert read_manifest(final) is None


def test_failed_write_leaves_nothing_behind(tmp_path):
    final = tmp_path / "art"
    with pytest.raises(RuntimeError):
        with staging_folder(final) as staging:
            _write_weights(staging)
            raise RuntimeError("quantizer crashed")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_finisher_keeps_the_first_complete_artifact(tmp_path):
    final = tmp_path / "art"
    with staging_folder(final) as first:
        _write_weights(first, b"a" * 10)
        with staging_folder(final) as second:
            _write_weights(second, b"b" * 20)
            publish(second, final, {"writer": "second"})
        publish(first, final, {"writer": "first"})
    assert read_manifest(final)["writer"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_replace_overwrites_a_complete_artifact(tmp_path):
    final = tmp_path / "art"
    for writer in ("old", "new"):
        with staging_folder(final) as staging:
            _write_weights(staging)
            publish(staging, final, {"writer": writer}, replace=True)
    assert read_manifest(final)["writer"] == "new"


def test_fingerprint_is_order_independent_and_value_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_sigkill_while_writing_leaves_no_artifact_and_staging_is_cleaned_next_time(tmp_path):
    final = tmp_path / "art"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from common.storage import staging_folder
        with staging_folder(Path({str(final)!r})) as staging:
            (staging / "model.safetensors").write_bytes(b"x" * 4096)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd())
    assert result.returncode == -signal.SIGKILL
    assert not final.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".art.tmp-")
    with staging_folder(final) as staging:
        _write_weights(staging)
        publish(staging, final, {})
    assert read_manifest(final) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


# -- what is wrong, in words ---------------------------------------------------------------
@pytest.mark.parametrize("damage, said", [
    ("delete_weights", "the weights file model.safetensors, listed in its manifest.json, is missing"),
    ("truncate_weights", "the weights file model.safetensors is 10 bytes, its manifest.json says 1,000 (truncated or replaced)"),
    ("corrupt_manifest", "its manifest.json is not valid JSON (truncated or damaged)"),
    ("no_manifest", "has no manifest.json (not written by the lab, or its run did not finish)"),
    ("latin1_manifest", "its manifest.json is not UTF-8 text"),
])
def test_check_manifest_names_the_file_that_is_wrong(tmp_path, damage, said):
    final = tmp_path / "art"
    with staging_folder(final) as staging:
        _write_weights(staging)
        publish(staging, final, {"label": "é"})
    if damage == "delete_weights":
        (final / "model.safetensors").unlink()
    elif damage == "truncate_weights":
        (final / "model.safetensors").write_bytes(b"x" * 10)
    elif damage == "corrupt_manifest":
        (final / MANIFEST).write_text('{"complete": tr')
    elif damage == "no_manifest":
        (final / MANIFEST).unlink()
    else:
        (final / MANIFEST).write_bytes((final / MANIFEST).read_text().replace("\\u00e9", "é").encode("latin-1"))
    manifest, problem = check_manifest(final)
    assert manifest is None and problem.startswith(said), problem


def test_folder_problem_reads_each_listed_file_as_its_format(tmp_path):
    """Sizes match, the bytes do not: a weights file overwritten with others of its length."""
    from safetensors.torch import save_file
    import torch

    final = tmp_path / "art"
    with staging_folder(final) as staging:
        save_file({"w": torch.zeros(16)}, str(staging / "model.safetensors"))
        publish(staging, final, {})
    assert folder_problem(final) is None
    size = (final / "model.safetensors").stat().st_size
    (final / "model.safetensors").write_bytes(b"\xff" * size)
    assert read_manifest(final) is not None  # the sizes still match
    assert folder_problem(final).startswith("the weights file model.safetensors is not a safetensors file")


# -- no empty folders, no leftovers ---------------------------------------------------------
def test_checking_an_output_folder_creates_nothing(tmp_path):
    assert ensure_writable_dir("output_dir", tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b" / "c"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="output_dir=.*cannot create it"):
        ensure_writable_dir("output_dir", tmp_path / "file" / "sub")


def test_a_failed_write_removes_the_parent_folders_it_created(tmp_path):
    final = tmp_path / "artifacts" / "tiny-s" / "art"
    with pytest.raises(RuntimeError):
        with staging_folder(final) as staging:
            _write_weights(staging)
            raise RuntimeError("quantizer crashed")
    assert list(tmp_path.iterdir()) == []


def test_scratch_folders_are_removed_after_use_and_after_a_kill(tmp_path):
    with scratch_folder(tmp_path, "lab-tasks") as scratch:
        (scratch / "task.yaml").write_text("task: x\n")
        assert scratch.parent == tmp_path and scratch.name.startswith(".lab-tasks.tmp-")
    assert not scratch.exists()
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from common.storage import scratch_folder
        with scratch_folder(Path({str(tmp_path)!r}), "lab-tasks") as scratch:
            (scratch / "task.yaml").write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == -signal.SIGKILL
    assert [p.name.startswith(".lab-tasks.tmp-") for p in tmp_path.iterdir()] == [True]
    with scratch_folder(tmp_path, "lab-tasks"):
        assert len(list(tmp_path.iterdir())) == 1  # the dead one is gone, only this run's
    assert list(tmp_path.iterdir()) == []


def test_a_folder_moved_aside_by_a_killed_replacing_run_is_removed_next_time(tmp_path):
    final = tmp_path / "art"
    (tmp_path / ".art.old-1234abcd").mkdir()
    with staging_folder(final) as staging:
        _write_weights(staging)
        publish(staging, final, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


# -- a full disk -------------------------------------------------------------------------------
def test_no_space_while_writing_is_one_line_naming_the_folder_and_the_write(tmp_path, monkeypatch):
    final = tmp_path / "art"

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull) as raised:
        with staging_folder(final) as staging:
            replace_atomically(staging / "samples.jsonl", full)
    message = str(raised.value)
    assert message.startswith(f"no space left on device: writing samples.jsonl of art into {tmp_path} failed")
    assert "\n" not in message and "free some space and rerun" in message
    assert list(tmp_path.iterdir()) == []


def test_torch_short_writes_count_as_a_full_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    from common import storage

    error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    monkeypatch.setattr(storage, "_free_bytes", lambda folder: 0)
    assert is_disk_full(error, tmp_path)
    monkeypatch.setattr(storage, "_free_bytes", lambda folder: 10 << 30)
    assert not is_disk_full(error, tmp_path)
    assert is_disk_full(RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"))


def test_a_large_files_sha256_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(storage, "REMEMBER_FROM_BYTES", 1024)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(os.urandom(4096))
    assert storage.remembered_sha256(weights) == storage.file_sha256(weights)
    storage.remember_sha256(weights, "0" * 64)  # a note the lookup must return without reading the file
    assert storage.remembered_sha256(weights) == "0" * 64
    weights.write_bytes(os.urandom(4096))  # same size, new mtime: read again
    assert storage.remembered_sha256(weights) == storage.file_sha256(weights)
    stamp = os.stat(weights)
    storage.remember_sha256(weights, "1" * 64)
    weights.write_bytes(os.urandom(4096))  # replaced in place, its mtime set back (cp -p): ctime still moves
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert os.stat(weights).st_mtime_ns == stamp.st_mtime_ns and os.stat(weights).st_size == stamp.st_size
    assert storage.remembered_sha256(weights) == storage.file_sha256(weights)
    small = tmp_path / "config.json"
    small.write_text("{}")
    storage.remember_sha256(small, "2" * 64)  # small files are always hashed
    storage.remember_sha256(tmp_path / "gone.safetensors", "3" * 64)  # vanished meanwhile: nothing to remember, no error
    assert storage.remembered_sha256(small) == storage.file_sha256(small)
    for note in (tmp_path / "cache" / storage.HASH_NOTES).iterdir():
        note.write_text("{not json")  # a damaged note: hashed again, no error
    assert storage.remembered_sha256(weights) == storage.file_sha256(weights)


def test_a_process_waiting_for_a_lock_says_so_once_and_gets_it(tmp_path, caplog):
    lock = tmp_path / "work.lock"
    entered = threading.Event()

    def second() -> None:
        with storage.exclusive_lock(lock):
            entered.set()

    with caplog.at_level(logging.INFO, logger="common.storage"), storage.exclusive_lock(lock):
        waiter = threading.Thread(target=second)
        waiter.start()
        for _ in range(100):
            if "waiting for" in caplog.text:
                break
            time.sleep(0.05)
        assert not entered.is_set()  # held here: the other one waits
    waiter.join(timeout=10)
    assert entered.is_set() and caplog.text.count(f"waiting for {lock}") == 1
