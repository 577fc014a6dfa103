"""Holds a lab command under test at one exact moment, so that the test can signal it there
(loaded through PYTHONPATH by the command's process).

QLAB_PAUSE_AT=<point> and QLAB_PAUSE_MARKER=<file>: the first time the process reaches
<point>, it writes its pid to <file> and sleeps (up to 120 s); a signal ends the sleep where
it would have ended the work, and the command unwinds from there. Points:

  loaded            python -m quantize: the source model is loaded, not yet quantized
  artifact-staged   the artifact's files are in its staging folder, its manifest not yet
  artifact-publish  files and manifest are staged, the folder not yet renamed into place
  lm-eval           python -m evaluate run: lm-eval's task files are in their scratch folder,
                    the tasks not yet run
  record-publish    a record's samples and manifest are staged, not yet renamed into place
  table-write       the results table's temporary file is written, not yet renamed

The functions wrapped are the lab's own (common.storage's helpers, models.loading), so the
pause lands inside the write the production code really does. Without QLAB_PAUSE_AT this
file does nothing.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

POINT = os.environ.get("QLAB_PAUSE_AT")
_paused = False


def _reached(point: str) -> None:
    global _paused
    if point != POINT or _paused:
        return
    _paused = True
    marker = os.environ["QLAB_PAUSE_MARKER"]
    with open(marker + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(marker + ".tmp", marker)
    time.sleep(120)


def _install() -> None:
    from pathlib import Path

    from common import storage
    from models import loading

    original = {name: getattr(storage, name) for name in ("_fsync_dir", "publish", "replace_atomically", "scratch_folder")}
    original_load = loading.load_model

    def load_model(*args, **kwargs):
        loaded = original_load(*args, **kwargs)
        _reached("loaded")
        return loaded

    def publish(staging, final, manifest, **kwargs):
        if "records" not in Path(final).parts:
            _reached("artifact-staged")
        return original["publish"](staging, final, manifest, **kwargs)

    def fsync_dir(folder):
        folder = Path(folder)
        if folder.name.startswith(".") and ".tmp-" in folder.name:  # publish(): staged, about to rename
            _reached("record-publish" if "records" in folder.parts else "artifact-publish")
        return original["_fsync_dir"](folder)

    def replace_atomically(path, write):
        def write_then_pause(tmp):
            result = write(tmp)
            if Path(path).name == "table.parquet":
                _reached("table-write")
            return result

        return original["replace_atomically"](path, write_then_pause)

    @contextmanager
    def scratch_folder(parent, prefix):
        with original["scratch_folder"](parent, prefix) as folder:
            (folder / "placeholder.txt").write_text("x")  # a file in it, like the task files
            _reached("lm-eval")
            yield folder

    loading.load_model = load_model
    storage.publish, storage._fsync_dir = publish, fsync_dir
    storage.replace_atomically, storage.scratch_folder = replace_atomically, scratch_folder


if POINT:
    _install()
