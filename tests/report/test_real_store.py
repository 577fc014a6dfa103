"""The report on records `python -m evaluate run` really wrote (tests/fixtures/report/tiny_store):
its numbers must agree with what the run itself recorded (accuracy, flips vs the baseline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import evaluate.store as store
from configs.report_schema import ReportConfig
from report.build import analyse
from report.provenance import warnings_table

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "tiny_store"
TASKS = {"tiny_arc", "tiny_openmath", "tiny_squad"}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    results = tmp_path_factory.mktemp("real") / "results"
    shutil.copytree(FIXTURE, results)
    return results, analyse(ReportConfig(results_dir=str(results)))


def test_variants_tasks_and_sample_counts(real):
    _, a = real
    assert sorted(a.summary.label) == ["none-float32", "rtn-w2a16-g32", "rtn-w4a16-g32", "rtn-w8a16-ch"]
    assert set(a.by_task.scope) == TASKS | {"all"}
    assert set(a.by_task[a.by_task.scope != "all"].n) == {40}
    assert set(a.summary.n) == {120}
    assert a.summary.size_b.nunique() == 1  # the baseline's size, not each artifact's packed count


def test_accuracy_and_flips_agree_with_the_run_records(real):
    results, a = real
    rows = a.by_task.set_index(["label", "scope"])
    checked = 0
    for _, record in store.iter_records(results):
        if record["task"] not in TASKS:
            continue
        row = rows.loc[(record["artifact"]["label"], record["task"])]
        assert row.accuracy == pytest.approx(record["metrics"]["accuracy"])
        assert row.format_compliance == pytest.approx(record["metrics"]["format_compliance"])
        flips = (record.get("baseline") or {}).get("flips")
        if flips:
            assert (row.gained, row.lost, row.n_paired) == (flips["gained"], flips["lost"], flips["paired"])
            checked += 1
    assert checked == 9  # 3 quantized variants x 3 tasks


def test_perplexity_kl_speed_and_notes(real):
    _, a = real
    summary = a.summary.set_index("label")
    assert (summary["word_perplexity[text_perplexity]"] > 0).all()
    assert summary.loc["none-float32", "perplexity_ratio[text_perplexity]"] == 1.0
    assert summary.loc[["rtn-w8a16-ch", "rtn-w4a16-g32", "rtn-w2a16-g32"], "kl_divergence"].notna().all()
    deploy = a.deploy.set_index("label")
    assert set(deploy.device) == {"cpu"} and set(deploy.memory_basis) == {"disk x 1.2"}
    assert (deploy.decode_tokens_per_s > 0).all()
    notes = warnings_table(a.collection, a.suspects)
    assert any("measured on CPU" in m for m in notes.message)
    assert a.gate.enabled is False and len(a.budgets) == 5


def test_a_quick_profile_store_is_caught_at_the_floor(real):
    """The quick tiny-s barely learned its tasks: its baseline sits at chance on tiny_arc
    (10/40, 4 options read from the prompts) and at 1/40 on the generation tasks, with
    every answer well-formed. No tier is stated; the gate names the shape; changed
    generations and KL still rank the bit widths."""
    _, a = real
    arc = a.floors[("tiny-s", "tiny_arc")]
    assert (arc.chance, arc.chance_from, arc.correct, arc.n, arc.passes) == (0.25, "prompt options", 10, 40, False)
    assert all(c.at_floor and not c.passes for c in a.floors.values())
    assert set(a.summary.tier) == {"at floor"}
    lines = [s.line for s in a.suspects]
    assert sum("all wrong but well-formed" in line for line in lines) == 3
    assert any(line.startswith("tiny-s: every variant, baseline included (4), is at the floor") for line in lines)
    assert a.trusted is None and a.left_out == 12
    changed = a.summary.set_index("label").changed
    assert changed["rtn-w2a16-g32"] > changed["rtn-w4a16-g32"] > changed["rtn-w8a16-ch"]
