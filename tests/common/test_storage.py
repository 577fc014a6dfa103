"""Artifact folders are published atomically and judged complete only by their manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from common.storage import MANIFEST, fingerprint, publish, read_manifest, staging_folder


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
