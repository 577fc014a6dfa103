"""The results store: records are published atomically and the derived table survives
concurrent rebuilds (parallel sweep cells each rebuild it after their records)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pandas as pd

from evaluate import store


def _add_record(results_dir, index: int) -> None:
    folder = store.record_folder(results_dir, f"{index:016x}", "tiny_openmath", f"{index:012x}")
    record = {"task": "tiny_openmath", "n": 2, "artifact": {"fingerprint": f"{index:016x}", "method": "rtn"},
              "settings_fingerprint": f"{index:012x}", "metrics": {"exact_match": index / 10}}
    store.write_record(folder, record, [{"doc_id": 0, "correct": True}, {"doc_id": 1, "correct": False}])


def _rebuild_table_repeatedly(results_dir) -> int:
    for _ in range(15):
        store.write_table(results_dir)
    return 0


def test_record_round_trips_and_a_second_writer_keeps_the_first(tmp_path):
    _add_record(tmp_path, 1)
    folder = store.record_folder(tmp_path, f"{1:016x}", "tiny_openmath", f"{1:012x}")
    store.write_record(folder, {"task": "tiny_openmath", "metrics": {"exact_match": 0.99}}, [])
    assert store.find_record(folder)["metrics"]["exact_match"] == 0.1
    assert [s["correct"] for s in store.read_samples(folder)] == [True, False]


def test_concurrent_table_rebuilds_neither_fail_nor_leave_temporary_files(tmp_path):
    for index in range(5):
        _add_record(tmp_path, index)
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("fork")) as pool:
        assert list(pool.map(_rebuild_table_repeatedly, [tmp_path] * 4)) == [0] * 4
    frame = pd.read_parquet(tmp_path / "table.parquet")
    assert sorted(frame["exact_match"]) == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert len(pd.read_csv(tmp_path / "table.csv")) == 5
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
