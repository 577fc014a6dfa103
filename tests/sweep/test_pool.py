"""The worker pool's guarantees, with a stub worker (tests/sweep/stub_worker.py) that
raises, crashes or sleeps on demand: fast, no model. The real worker is tested end to end
in test_sweep_workers.py."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from common.storage import SCHEMA_VERSION
from configs.sweep_schema import EvalSweepConfig, SweepSpec
from sweep.cells import Cell, Claim, status_path, write_status
from sweep.pool import Pool

STUB = [sys.executable, "-m", "tests.sweep.stub_worker"]  # run from the repo root (the pool's cwd)


def cells(*names: str) -> list[Cell]:
    return [Cell(name, "rtn", (f"model={name}", f"i={i}"), ()) for i, name in enumerate(names)]


def pool(tmp_path, slots: int = 1, **kwargs) -> Pool:
    cfg = EvalSweepConfig(sweep=SweepSpec(name="stub"), output_dir=str(tmp_path / "a"), results_dir=str(tmp_path / "r"),
                          sweeps_dir=str(tmp_path / "s"))
    return Pool(cfg, "test-run", slots, worker_command=STUB, steps=lambda cell: [(sys.executable, "cell")],
                progress=False, **kwargs)


def worker_pid(outcome: dict) -> int:
    return outcome["worker"]["pid"]


def test_a_raising_cell_fails_and_its_worker_goes_on(tmp_path):
    ok1, broken, ok2 = run = cells("ok", "raise", "ok")
    with pool(tmp_path) as p:
        outcomes = p.run(run)
    assert [outcomes[c]["status"] for c in run] == ["done", "failed", "done"]
    assert outcomes[broken]["reason"] == "ValueError: broken"
    assert worker_pid(outcomes[ok1]) == worker_pid(outcomes[broken]) == worker_pid(outcomes[ok2])
    log = (tmp_path / "s" / "stub" / "logs" / f"{broken.id}.log").read_text()
    assert "ValueError: broken" in log and "sweep run test-run" in log


@pytest.mark.parametrize("crash, reason", [("segv", "worker killed by SIGSEGV"),
                                           ("kill", "worker killed by SIGKILL (out of memory?)")])
def test_a_crashing_cell_takes_down_only_its_worker_which_is_replaced(tmp_path, crash, reason):
    before, crashed, after = run = cells("ok", crash, "ok")
    with pool(tmp_path) as p:
        outcomes = p.run(run)
    assert [outcomes[c]["status"] for c in run] == ["done", "failed", "done"]
    assert outcomes[crashed]["reason"] == reason
    assert json.loads(status_path(p.cfg, crashed).read_text())["reason"] == reason  # recorded, not only said
    assert worker_pid(outcomes[before]) != worker_pid(outcomes[after])  # a new worker for the next cell


def test_a_killed_cells_temporary_folder_is_removed(tmp_path):
    with pool(tmp_path) as p:
        outcomes = p.run(cells("tmp", "ok"))
        assert not list((tmp_path / "r" / ".tmp").glob("*"))
    assert [o["status"] for o in outcomes.values()] == ["failed", "done"]


def test_one_fresh_process_per_cell_when_asked(tmp_path):
    run = cells("ok", "ok", "ok")
    with pool(tmp_path, cells_per_worker=1) as p:
        outcomes = p.run(run)
    assert len({worker_pid(outcomes[c]) for c in run}) == 3


def test_workers_are_per_slot_and_kept_across_phases(tmp_path):
    with pool(tmp_path, slots=2) as p:
        first = p.run(cells("ok"))
        # cells that take a while: a loaded machine may take seconds to start the second
        # worker, and quick cells would all be done by the first one by then
        second = p.run(cells("nap", "nap", "nap", "nap"))
    pids = {worker_pid(o) for o in second.values()}
    assert len(pids) == 2 and worker_pid(next(iter(first.values()))) in pids


def test_a_stopped_pool_leaves_the_running_cell_pending_and_starts_no_more(tmp_path):
    sleeping, never = run = cells("sleep", "ok")
    with pool(tmp_path) as p:
        threading.Timer(3, p.stop, args=(signal.SIGTERM,)).start()
        started = time.monotonic()
        outcomes = p.run(run)
    assert time.monotonic() - started < 30
    assert outcomes[sleeping] == {"status": "pending", "interrupted": True}
    assert outcomes[never] == {"status": "pending"}
    assert not status_path(p.cfg, sleeping).exists()  # an interrupted cell is not failed


def test_a_worker_killed_by_sigterm_from_outside_stops_the_pool(tmp_path):
    """scancel, or a terminal's Ctrl-C reaching the workers: interrupted, not failed."""
    sleeping, never = run = cells("sleep", "ok")
    with pool(tmp_path) as p:
        def kill_the_worker():
            time.sleep(3)
            for worker in p._all_workers():
                os.kill(worker.pid, signal.SIGTERM)
        threading.Thread(target=kill_the_worker).start()
        outcomes = p.run(run)
    assert outcomes[sleeping]["status"] == outcomes[never]["status"] == "pending"
    assert p.stopping == signal.SIGTERM


def test_a_cell_claimed_by_another_sweep_is_waited_for_then_skipped_if_it_finished(tmp_path):
    other, mine = run = cells("ok", "ok")
    p = pool(tmp_path)
    holder = Claim(p.cfg, other, "other-run")
    assert holder.try_acquire()
    assert not Claim(p.cfg, other, "this-run").try_acquire()  # exclusive, even within one process

    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_text(json.dumps({"complete": True, "schema_version": SCHEMA_VERSION, "files": {}}))

    def finish_it():
        time.sleep(3)
        write_status(p.cfg, other, status="done", artifact=str(artifact), records=[], run="other-run")
        holder.release()
    threading.Thread(target=finish_it).start()
    with p:
        outcomes = p.run(run)
    assert outcomes[mine]["status"] == "done" and "worker" in outcomes[mine]  # not held up by the claimed cell
    assert outcomes[other]["by_another_run"] and outcomes[other]["run"] == "other-run"


def test_a_dead_sweeps_claim_blocks_nobody(tmp_path):
    cell = cells("ok")[0]
    p = pool(tmp_path)
    path = Claim(p.cfg, cell, "x").path
    path.parent.mkdir(parents=True)
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.kill(os.getpid(), 9)")
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == -signal.SIGKILL
    assert Claim(p.cfg, cell, "y").try_acquire()
    fd = os.open(path, os.O_RDWR)
    with pytest.raises(BlockingIOError):  # and now it is held
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def test_bookkeeping_that_cannot_be_written_never_stops_the_cells(tmp_path, caplog):
    """A sweeps folder that cannot be written (here: under a file): claims, logs and status
    files fail; the cells still run and their statuses are kept in memory, said once."""
    (tmp_path / "s").write_text("not a folder")
    run = cells("ok", "raise", "kill")
    with pool(tmp_path) as p:
        outcomes = p.run(run)
    assert [outcomes[c]["status"] for c in run] == ["done", "failed", "failed"]
    assert outcomes[run[2]]["reason"].startswith("worker killed by SIGKILL")
    warnings = [r.getMessage() for r in caplog.records if "sweeps folder" in r.getMessage()]
    assert warnings and len(warnings) == len(set(warnings))  # each kind of write said once
