"""common.cli and common.environments.dispatch: Ctrl-C and SIGTERM end a command in one line
with exit code 130 / 143 and no temporary folder left, also when the run was handed to another
environment's interpreter; a LabError is one line with its exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import pytest

from common.cli import INTERRUPTED
from tests.conftest import REPO_ROOT


def start(mode: str, folder, **env) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.common.cli_command", mode, str(folder)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env}, start_new_session=True)
    return process


def wait_for(process: subprocess.Popen, word: str) -> None:
    line = process.stdout.readline()
    assert line.strip() == word, (line, process.stderr.read() if process.poll() is not None else "")


def finish(process: subprocess.Popen) -> tuple[int, list[str]]:
    _, err = process.communicate(timeout=120)
    return process.returncode, err.splitlines()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_is_one_line_its_exit_code_and_no_staging_folder(tmp_path, signum, code):
    process = start("work", tmp_path)
    wait_for(process, "ready")
    assert len(list(tmp_path.iterdir())) == 1  # the staging folder
    process.send_signal(signum)
    returncode, lines = finish(process)
    assert (returncode, lines) == (code, [INTERRUPTED])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("to", ["parent", "group"])
def test_a_dispatched_run_gets_the_signal_and_says_it_once(tmp_path, signum, code, to):
    """`to=group` is Ctrl-C in a terminal (every process of the foreground group gets it);
    `to=parent` is `kill <pid>` of the command the user started."""
    process = start("dispatch", tmp_path)
    wait_for(process, "ready")
    (process.send_signal if to == "parent" else lambda s: os.killpg(process.pid, s))(signum)
    returncode, lines = finish(process)
    assert returncode == code
    assert lines[-1] == INTERRUPTED and lines.count(INTERRUPTED) == 1, lines
    assert not any("Traceback" in line for line in lines)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("to", ["parent", "group"])
def test_a_signal_while_the_dispatched_run_is_still_starting_is_handled_once_it_can_be(tmp_path, signum, code, to):
    """The child starts with the signals blocked: one that comes while it imports waits for
    its handlers, instead of a KeyboardInterrupt traceback from the middle of an import."""
    process = start("dispatch", tmp_path, QLAB_TEST_SLOW_START="2")
    wait_for(process, "starting")
    (process.send_signal if to == "parent" else lambda s: os.killpg(process.pid, s))(signum)
    returncode, lines = finish(process)
    assert returncode == code
    assert lines[-1] == INTERRUPTED and lines.count(INTERRUPTED) == 1, lines
    assert not any("Traceback" in line for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_a_lab_error_is_one_line_and_its_exit_code(tmp_path):
    returncode, lines = finish(start("fail", tmp_path))
    assert returncode == 2
    assert lines == [f"error: {tmp_path / 'config.json'}: the model config is not valid JSON; re-download it"]


@pytest.fixture
def keep_signal_handlers():
    """run_command installs its handlers in this (pytest's) process: put pytest's back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_full_disk_inside_a_library_is_one_line_and_other_errors_keep_their_traceback(capsys, keep_signal_handlers):
    import errno

    from common.cli import run_command

    def library_write(argv):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/cache/datasets/x.arrow")
        except OSError as error:
            raise RuntimeError("An error occurred while generating the dataset") from error

    assert run_command(library_write, []) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: no space left on device writing /cache/datasets/x.arrow: free some space and rerun"]

    def bug(argv):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_command(bug, [])
