"""Small results stores written with the real `evaluate.store.write_record`, with numbers
chosen to be checked by hand.

A variant's per-sample correctness is its baseline's with `lost` correct answers turned
wrong (the first correct docs) and `gained` wrong answers turned right (the last docs),
so every delta, flip count and McNemar table is known in advance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import evaluate.store as store  # not `from evaluate import store`: that loads HF evaluate (slow)

SETTINGS = "settings-fingerprint-0001"
SUSPECT = "baseline format compliance 75% < 80% (check stop sequences and max_gen_toks)"
GIB = 2**30


@dataclass
class Spec:
    model: str
    method: str = "none"
    bits: int = 16
    group: Optional[int] = None
    params_b: float = 1.0
    gained: int = 0
    lost: int = 0
    format_lost: int = 0  # boxed tasks: this many more samples without a box than the baseline
    rescued: int = 0  # boxed tasks: this many wrong answers are right under lenient rescoring
    decode_tps: Optional[float] = None
    memory_gib: Optional[float] = None
    disk_gib: float = 1.0
    suspect: list = field(default_factory=list)  # baseline-gate reasons

    @property
    def is_baseline(self) -> bool:
        return self.method == "none"

    @property
    def label(self) -> str:
        return "none-bf16" if self.is_baseline else f"{self.method}-w{self.bits}a16-g{self.group}"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.model}/{self.label}".encode()).hexdigest()

    def artifact(self) -> dict:
        return {
            "path": f"/nonexistent/artifacts/{self.model}/{self.label}", "fingerprint": self.fingerprint,
            "label": self.label, "model": self.model, "model_kind": "instruct", "params_b": self.params_b,
            "num_parameters": int(self.params_b * 1e9), "method": self.method, "weight_bits": self.bits,
            "group_size": self.group, "size_on_disk_bytes": int(self.disk_gib * GIB), "is_baseline": self.is_baseline,
        }


def correctness(n: int, base_correct: int, spec: Spec) -> list[bool]:
    """Baseline: the first `base_correct` docs right; the variant flips as documented above."""
    values = [i < base_correct for i in range(n)]
    for i in range(spec.lost):
        values[i] = False
    for i in range(spec.gained):
        values[n - 1 - i] = True
    return values


def write_task(results_dir: Path, spec: Spec, task: str, n: int, base_correct: int, *, boxed: bool = True,
               baseline: Optional[Spec] = None, base_format_ok: Optional[int] = None) -> Path:
    correct = correctness(n, base_correct, spec)
    if boxed:
        ok_count = (n if base_format_ok is None else base_format_ok) - spec.format_lost
        # unboxed answers are taken from the wrong ones (counted from the end of the right ones)
        wrong = [i for i in range(n) if not correct[i]]
        unboxed = set(wrong[:max(n - ok_count, 0)])
        rescued = set(wrong[:spec.rescued])
        rows = [{"doc_id": i, "prompt": f"q{i}", "generation": "\\boxed{x}", "golds": ["x"], "hit_max_tokens": False,
                 "extracted": "x", "correct": c, "rescored_answer": "x", "rescored_correct": c or i in rescued,
                 "rescore_source": "box",
                 "format_ok": i not in unboxed, "behaviour": _behaviour(c, i in unboxed),
                 "repetition_ratio": 1.0, "n_boxes": int(i not in unboxed)} for i, c in enumerate(correct)]
        metrics = _boxed_metrics(rows)
    else:
        rows = [{"doc_id": i, "target": 0, "correct": float(c), "acc": float(c)} for i, c in enumerate(correct)]
        metrics = {"acc": sum(correct) / n, "accuracy": sum(correct) / n}
    record = _record(spec, task, n, metrics)
    record["baseline"] = _comparison(spec, baseline)
    return store.write_record(store.record_folder(results_dir, spec.fingerprint, task, SETTINGS), record, rows)


def write_speed(results_dir: Path, spec: Spec, *, device: str = "cuda:0") -> Path:
    record = _record(spec, "speed", 0, {})
    record["speed"] = {
        "device": device, "prompt_tokens": 64, "new_tokens": 32,
        "by_batch": {"1": {"time_to_first_token_s": 0.01, "prefill_tokens_per_s": 6400.0,
                           "decode_tokens_per_s": spec.decode_tps, "latency_per_prompt_s": 32 / spec.decode_tps,
                           "batch_latency_s": 32 / spec.decode_tps}},
        "peak_memory_bytes": int(spec.memory_gib * GIB),
        "peak_memory_kind": "cuda_max_allocated" if device.startswith("cuda") else "process_max_rss",
        "load_seconds": 1.0, "size_on_disk_bytes": int(spec.disk_gib * GIB),
    }
    return store.write_record(store.record_folder(results_dir, spec.fingerprint, "speed", "speed-settings"), record, [])


def write_store(results_dir: Path, specs: list[Spec], tasks: dict[str, tuple[int, dict[str, int], bool]]) -> Path:
    """tasks: name -> (n, {model: baseline correct count}, boxed)."""
    baselines = {s.model: s for s in specs if s.is_baseline}
    for spec in specs:
        for task, (n, base_correct, boxed) in tasks.items():
            write_task(results_dir, spec, task, n, base_correct[spec.model], boxed=boxed,
                       baseline=None if spec.is_baseline else baselines.get(spec.model))
        if spec.decode_tps:
            write_speed(results_dir, spec)
    return results_dir


def _behaviour(correct: bool, unboxed: bool) -> str:
    return "correct" if correct else ("no_box" if unboxed else "wrong_answer")


def _boxed_metrics(rows: list[dict]) -> dict:
    """The metrics `evaluate.records.boxed_metrics` writes (stderr left out)."""
    n = len(rows)
    metrics = {name: sum(bool(r[key]) for r in rows) / n for name, key in
               (("accuracy", "correct"), ("rescored_accuracy", "rescored_correct"), ("format_compliance", "format_ok"))}
    behaviours = ("correct", "wrong_answer", "no_box", "malformed_box", "max_tokens", "repetition", "empty")
    metrics["behaviour"] = {b: sum(r["behaviour"] == b for r in rows) for b in behaviours}
    return metrics


def _record(spec: Spec, task: str, n: int, metrics: dict) -> dict:
    return {
        "task": task, "n": n, "metrics": metrics, "settings": {"task": task, "limit": n, "seed": 0},
        "settings_fingerprint": SETTINGS, "artifact": spec.artifact(), "eval_seconds": 1.0, "eval_batch_size": 8,
        "data_files": {}, "versions": {"python": "3.11.7", "torch": "2.13.0"},
        "git": {"commit": "0123456789abcdef", "dirty": False}, "hardware": {"host": "fixture", "gpu": "Fixture GPU"},
    }


def _comparison(spec: Spec, baseline: Optional[Spec]) -> dict:
    if spec.is_baseline or baseline is None:
        return {"is_baseline": spec.is_baseline}
    return {"is_baseline": False, "baseline_fingerprint": baseline.fingerprint,
            "gate": {"suspect_pipeline": bool(spec.suspect), "reasons": list(spec.suspect)}}


def sweep_specs() -> list[Spec]:
    """Two models, rtn at 8/4/3 bits (group 32) and gptq at 4 bits (group 128), one boxed
    task "math" of 100 samples; memory is a CUDA peak, so budgets use it directly.

    variant          acc   delta  flips +/-  format  tier           decode tok/s  GiB
    small base       60%                     100%                   100           1.0
    small rtn w8     60%    0.0     1/1      100%    negligible     150           0.6  (a baseline-gate warning)
    small rtn w4     56%   -4.0     1/5      100%    acceptable     200           0.4
    small rtn w3     45%  -15.0     2/17     100%    unacceptable   220           0.3
    small gptq w4    58%   -2.0     0/2       96%    acceptable (format -4)  210  0.4
    large base       80%                     100%                    30           6.0
    large rtn w8     80%    0.0     0/0      100%    negligible      50           3.2
    large rtn w4     79%   -1.0     0/1      100%    negligible      70           1.8
    large rtn w3     74%   -6.0     1/7      100%    concerning      80           1.4
    large gptq w4    80%    0.0     0/0      100%    negligible      75           1.8
    """
    s, big = dict(model="small", params_b=0.5), dict(model="large", params_b=3.0)
    return [
        Spec(**s, decode_tps=100, memory_gib=1.0, disk_gib=1.0),
        Spec(**s, method="rtn", bits=8, group=32, gained=1, lost=1, decode_tps=150, memory_gib=0.6, disk_gib=0.5,
             suspect=[SUSPECT]),
        Spec(**s, method="rtn", bits=4, group=32, gained=1, lost=5, decode_tps=200, memory_gib=0.4, disk_gib=0.3),
        Spec(**s, method="rtn", bits=3, group=32, gained=2, lost=17, decode_tps=220, memory_gib=0.3, disk_gib=0.25),
        Spec(**s, method="gptq", bits=4, group=128, lost=2, format_lost=4, decode_tps=210, memory_gib=0.4,
             disk_gib=0.3),
        Spec(**big, decode_tps=30, memory_gib=6.0, disk_gib=6.0),
        Spec(**big, method="rtn", bits=8, group=32, decode_tps=50, memory_gib=3.2, disk_gib=3.0),
        Spec(**big, method="rtn", bits=4, group=32, lost=1, decode_tps=70, memory_gib=1.8, disk_gib=1.6),
        Spec(**big, method="rtn", bits=3, group=32, gained=1, lost=7, decode_tps=80, memory_gib=1.4, disk_gib=1.2),
        Spec(**big, method="gptq", bits=4, group=128, decode_tps=75, memory_gib=1.8, disk_gib=1.6),
    ]


SWEEP_TASKS = {"math": (100, {"small": 60, "large": 80}, True)}
