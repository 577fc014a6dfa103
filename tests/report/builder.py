"""Small results stores written with the real `evaluate.store.write_record`, with numbers
chosen to be checked by hand.

A variant's per-sample correctness is its baseline's with `lost` correct answers turned
wrong (the first correct docs) and `gained` wrong answers turned right (the last docs),
so every delta, flip count and McNemar table is known in advance. Its generation differs
from the baseline's exactly on the flipped docs, the unboxed ones (`format_lost`, taken
from the first wrong docs) and `rewritten` more docs from n // 2 up (same correctness,
other words), so changed generations are known too. `tasks` overrides any of these per
task. A task written with `choices=k` has k lettered options in every prompt (multiple
choice: chance 1/k); otherwise it is a generation task (floor 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
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
    rewritten: int = 0  # boxed tasks: this many more generations differ from the baseline's, correctness unchanged
    tasks: dict = field(default_factory=dict)  # task -> overrides of gained, lost, format_lost, rescued, rewritten
    kl: Optional[tuple[float, float]] = None  # (KL divergence, top-1 agreement): a kl_divergence record
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

    def on(self, task: str) -> "Spec":
        """This spec with the task's overrides applied."""
        return replace(self, **self.tasks.get(task, {}))

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
               baseline: Optional[Spec] = None, base_format_ok: Optional[int] = None, choices: int = 0) -> Path:
    spec = spec.on(task)
    correct = correctness(n, base_correct, spec)
    if boxed:
        ok_count = (n if base_format_ok is None else base_format_ok) - spec.format_lost
        # unboxed answers are taken from the wrong ones (counted from the end of the right ones)
        wrong = [i for i in range(n) if not correct[i]]
        unboxed = set(wrong[:max(n - ok_count, 0)])
        rescued = set(wrong[:spec.rescued])
        base_values = correctness(n, base_correct, Spec(model=spec.model))
        other = {i for i in range(n) if correct[i] != base_values[i]} | set(range(n // 2, n // 2 + spec.rewritten))
        options = "".join(f"\n{chr(65 + k)}. option {k}" for k in range(choices))
        rows = [{"doc_id": i, "prompt": f"q{i}{options}\n", "generation": _generation(i, i in unboxed, i in other),
                 "golds": ["x"], "hit_max_tokens": False,
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


KL_PROMPTS = 20


def write_kl(results_dir: Path, spec: Spec, baseline: Optional[Spec] = None, *, per_prompt: bool = True,
             settings: str = SETTINGS) -> Path:
    """A kl_divergence record of KL_PROMPTS prompts of "math": per-prompt KL rising
    linearly from kl/2 to 3 kl/2 (mean kl), as `evaluate run` writes them."""
    kl, top1 = spec.kl
    record = _record(spec, "kl_divergence", KL_PROMPTS, {"kl_divergence": kl, "kl_divergence_stderr": kl / 10,
                                                         "top1_agreement": top1, "n_prompts": KL_PROMPTS})
    record["settings_fingerprint"] = settings
    if baseline is not None:
        record["baseline"] = {"baseline_artifact": "fixture", "baseline_fingerprint": baseline.fingerprint}
    rows = [{"doc_id": i, "task": "math", "kl_divergence": kl * (0.5 + i / (KL_PROMPTS - 1)), "top1_agreement": top1}
            for i in range(KL_PROMPTS)] if per_prompt else []
    return store.write_record(store.record_folder(results_dir, spec.fingerprint, "kl_divergence", settings),
                              record, rows)


def write_store(results_dir: Path, specs: list[Spec], tasks: dict[str, tuple]) -> Path:
    """tasks: name -> (n, {model: baseline correct count}, boxed[, choices])."""
    baselines = {s.model: s for s in specs if s.is_baseline}
    for spec in specs:
        for task, (n, base_correct, boxed, *choices) in tasks.items():
            write_task(results_dir, spec, task, n, base_correct[spec.model], boxed=boxed,
                       baseline=None if spec.is_baseline else baselines.get(spec.model), choices=sum(choices))
        if spec.decode_tps:
            write_speed(results_dir, spec)
        if spec.kl:
            write_kl(results_dir, spec, baselines.get(spec.model))
    return results_dir


def _generation(i: int, unboxed: bool, changed: bool) -> str:
    if unboxed:
        return f"the answer is {i}"
    return f"\\boxed{{v{i}}}" if changed else f"\\boxed{{{i}}}"


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
    """Two models, rtn at 8/4/3 bits and gptq at 4 bits (all group 32), a boxed generation
    task "math" (400 samples, floor 0) and a boxed 4-choice task "arc" (100 samples, chance
    25%). The small model's arc baseline, 27/100, is at chance: arc is left out of small's
    tiers (and the gate flags it: all wrong but well-formed). Memory is a CUDA peak.

    task math (arc)   accuracy      flips +/-      changed    pooled tier and its 95% interval (pp)
    small base        60% (27%)                               (small pools math only) 100 tok/s, 1.0 GiB
    small rtn w8      60% (27%)     1/1 (0/0)       2 (0)     negligible [-1.2, +1.2]; records with a gate warning
    small rtn w4      58% (27%)     2/10 (3/3)     72 (26)    inconclusive -2.0 [-4.1, -0.4]: straddles -3
    small gptq w4     59.5% (27%)   1/3 (2/2)       4 (4)     negligible -0.5 [-2.0, +0.7]
    small rtn w3      40.5% (27%)   2/80 (12/12)   82 (62)    unacceptable -19.5 [-23.8, -15.7]
    large base        80% (70%)                               (large pools math and arc) 30 tok/s, 6.0 GiB
    large rtn w8      80% (70%)     0/0             0         negligible [-0.8, +0.8]
    large rtn w4      79.5% (70%)   0/2             2         negligible -0.4 [-1.4, +0.4]
    large rtn w3      73% (70%)     1/29           30         inconclusive -5.6 [-8.0, -3.8]: acceptable or concerning
    large gptq w4     80% (70%)     0/0            75         unacceptable by format: -15.0 [-18.4, -12.1]
    """
    s, big = dict(model="small", params_b=0.5), dict(model="large", params_b=3.0)
    return [
        Spec(**s, decode_tps=100, memory_gib=1.0, disk_gib=1.0),
        Spec(**s, method="rtn", bits=8, group=32, tasks={"math": dict(gained=1, lost=1)}, decode_tps=150,
             memory_gib=0.6, disk_gib=0.5, suspect=[SUSPECT], kl=(0.001, 0.99)),
        Spec(**s, method="rtn", bits=4, group=32, tasks={"math": dict(gained=2, lost=10, rewritten=60),
                                                          "arc": dict(gained=3, lost=3, rewritten=20)},
             decode_tps=200, memory_gib=0.4, disk_gib=0.3, kl=(0.02, 0.95)),
        Spec(**s, method="gptq", bits=4, group=32,
             tasks={"math": dict(gained=1, lost=3), "arc": dict(gained=2, lost=2)},
             decode_tps=210, memory_gib=0.4, disk_gib=0.3, kl=(0.005, 0.98)),
        Spec(**s, method="rtn", bits=3, group=32, tasks={"math": dict(gained=2, lost=80),
                                                          "arc": dict(gained=12, lost=12, rewritten=40)},
             decode_tps=220, memory_gib=0.3, disk_gib=0.25, kl=(0.145, 0.82)),
        Spec(**big, decode_tps=30, memory_gib=6.0, disk_gib=6.0),
        Spec(**big, method="rtn", bits=8, group=32, decode_tps=50, memory_gib=3.2, disk_gib=3.0),
        Spec(**big, method="rtn", bits=4, group=32, tasks={"math": dict(lost=2)}, decode_tps=70, memory_gib=1.8,
             disk_gib=1.6),
        Spec(**big, method="rtn", bits=3, group=32, tasks={"math": dict(gained=1, lost=29)}, decode_tps=80,
             memory_gib=1.4, disk_gib=1.2),
        Spec(**big, method="gptq", bits=4, group=32, tasks={"math": dict(format_lost=75)}, decode_tps=75,
             memory_gib=1.8, disk_gib=1.6),
    ]


SWEEP_TASKS = {"math": (400, {"small": 240, "large": 320}, True), "arc": (100, {"small": 27, "large": 70}, True, 4)}
