"""Kills a sweep under test at one exact moment (loaded through PYTHONPATH by every Python
process of that sweep, the sweep itself and each cell).

QLAB_KILL_AT="<point>:<n>" SIGKILLs the sweep's whole process group, the sweep and every
running cell, the n-th time any of its processes reaches <point>. The hits are counted
in the file QLAB_KILL_COUNTER, one byte per hit, across processes. QLAB_KILL_SIGNAL (a
signal name, default SIGKILL) and QLAB_KILL_TARGET change what is sent where: "group"
(default: every process of the sweep, as a terminal's Ctrl-C does), "leader" (the process
group's leader only: the sweep itself, started in its own session) or "self" (the process
that reached the point: a cell's worker). Points:

  artifact-publish  an artifact's weights and manifest are in its staging folder, not yet renamed into place
  record-write      a cell is evaluating: a record is about to be staged (earlier records are published)
  record-publish    a record's samples and manifest are in its staging folder, not yet renamed into place
  table-write       the results table's temporary file is written, not yet renamed over table.parquet
  status-write      a cell's status file is written under its temporary name, not yet renamed into place

The functions wrapped here are the lab's own atomic-write helpers, so the kill lands
inside the write the production code really does. Without QLAB_KILL_AT this file does
nothing.
"""

from __future__ import annotations

import os
import signal

KILL_AT = os.environ.get("QLAB_KILL_AT")


def _reached(point: str) -> None:
    wanted, _, nth = KILL_AT.partition(":")
    if point != wanted:
        return
    fd = os.open(os.environ["QLAB_KILL_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"x")
        hits = os.lseek(fd, 0, os.SEEK_CUR)  # the end offset of this very append
    finally:
        os.close(fd)
    if hits == int(nth):
        signum = getattr(signal, os.environ.get("QLAB_KILL_SIGNAL", "SIGKILL"))
        target = os.environ.get("QLAB_KILL_TARGET", "group")
        if target == "self":
            os.kill(os.getpid(), signum)
        elif target == "leader":
            os.kill(os.getpgid(0), signum)
        else:
            os.killpg(os.getpgid(0), signum)


def _install() -> None:
    from pathlib import Path

    from common import storage as artifact

    original_fsync_dir, original_replace, original_staging = (
        artifact._fsync_dir, artifact.replace_atomically, artifact.staging_folder)

    def fsync_dir(folder):
        folder = Path(folder)
        if folder.name.startswith(".") and ".tmp-" in folder.name:  # publish(): staged, about to rename
            _reached("record-publish" if "records" in folder.parts else "artifact-publish")
        return original_fsync_dir(folder)

    def replace_atomically(path, write):
        path = Path(path)

        def write_then_maybe_die(tmp):
            result = write(tmp)
            if path.name == "table.parquet":
                _reached("table-write")
            elif path.parent.name == "cells" and not path.name.endswith(".spec.json"):
                _reached("status-write")
            return result

        return original_replace(path, write_then_maybe_die)

    def staging_folder(final):
        if "records" in Path(final).parts:
            _reached("record-write")
        return original_staging(final)

    artifact._fsync_dir = fsync_dir
    artifact.replace_atomically = replace_atomically
    artifact.staging_folder = staging_folder


if KILL_AT:
    _install()
