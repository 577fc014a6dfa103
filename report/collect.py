"""Read the results store into what the report compares: variants, their records, samples.

A variant is one artifact (model x method x bits x group, identified by its fingerprint).
A method whose levels are not a bit width alone (GGUF: Q4_K_M, Q4_K_S and Q4_0 are all
"4-bit") records its level and its effective bits per weight: each level is its own variant,
placed on a bits axis by its effective bits, with its fallbacks in its label.
For each variant and task exactly one record is used. When several exist (the same task
evaluated with different settings), the one whose settings fingerprint equals the
baseline's is taken, so that variant and baseline saw the same samples with the same
prompts; among equals, the largest n, then the newest. Everything set aside is listed as a
note, never dropped silently. Only JSON is read: no model is loaded.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

import evaluate.store as store
from configs.errors import ConfigError
from configs.report_schema import ReportConfig

SPECIAL_TASKS = ("speed", "kl_divergence")
SCORE_KEYS = {"accuracy": "correct", "rescored_accuracy": "rescored_correct", "format_compliance": "format_ok"}


@dataclass
class Variant:
    key: str  # artifact fingerprint
    model: str
    size_b: Optional[float]  # parameters, billions
    method: str
    bits: float  # effective bits per weight where the method records them (GGUF), else the nominal bits
    group: Optional[int]
    label: str  # artifact label, made unique within the model
    is_baseline: bool
    model_kind: str
    path: str
    size_on_disk_bytes: Optional[int]
    baseline_key: Optional[str] = None
    weight_bits: int = 0  # nominal: what the method was asked for
    level: str = ""  # the step on the method's ladder: "w4", or a GGUF level ("Q4_K_M")
    scheme: str = ""  # the model-independent column name: method and level (or the label), group
    fallback: Optional[str] = None  # GGUF: "12 of 24 tensors Q5_0" (tensors llama.cpp gave another type)


@dataclass
class Entry:
    folder: Path
    record: dict

    @property
    def task(self) -> str:
        return self.record["task"]


@dataclass
class Note:
    level: str  # "warning" (a number may be wrong) or "info"
    where: str
    message: str


@dataclass
class Collection:
    variants: dict[str, Variant]
    quality: dict[tuple[str, str], Entry]  # (variant key, task) -> record with per-sample correctness
    perplexity: dict[tuple[str, str], Entry]
    speed: dict[str, Entry]
    kl: dict[str, Entry]
    notes: list[Note] = field(default_factory=list)
    _samples: dict = field(default_factory=dict, repr=False)

    @property
    def entries(self) -> list[Entry]:
        return [*self.quality.values(), *self.perplexity.values(), *self.speed.values(), *self.kl.values()]

    def tasks(self) -> list[str]:
        return sorted({task for _, task in self.quality})

    def is_boxed(self, key: str, task: str) -> bool:
        return "format_compliance" in self.quality[(key, task)].record.get("metrics", {})

    def samples(self, key: str, task: str) -> dict:
        """doc_id -> sample row of a quality record (read once)."""
        if (key, task) not in self._samples:
            rows = store.read_samples(self.quality[(key, task)].folder)
            self._samples[(key, task)] = {row["doc_id"]: row for row in rows}
        return self._samples[(key, task)]

    def scores(self, key: str, task: str, metric: str) -> dict:
        """doc_id -> per-sample score (0/1 for correctness) of `metric`."""
        name = SCORE_KEYS.get(metric, metric)
        out = {}
        for doc, row in self.samples(key, task).items():
            value = row.get(name, row.get("correct") if metric == "rescored_accuracy" else None)
            if isinstance(value, (bool, int, float)) and not (isinstance(value, float) and math.isnan(value)):
                out[doc] = float(value)
        return out

    def kl_by_prompt(self, key: str) -> dict:
        """(task, doc_id) -> the variant's KL on that prompt; {} where its KL record keeps
        no per-prompt rows (records written before they were kept)."""
        entry = self.kl.get(key)
        if entry is None:
            return {}
        if ("kl", key) not in self._samples:
            rows = store.read_samples(entry.folder)
            self._samples[("kl", key)] = {(row.get("task"), row["doc_id"]): float(row["kl_divergence"])
                                          for row in rows if "doc_id" in row and "kl_divergence" in row}
        return self._samples[("kl", key)]

    def without(self, records: set) -> "Collection":
        """The same collection less some (variant key, task) quality records."""
        kept = {slot: entry for slot, entry in self.quality.items() if slot not in records}
        return Collection(self.variants, kept, self.perplexity, self.speed, self.kl, self.notes, self._samples)

    def scores_by_sample(self, key: str, metric: str) -> dict:
        """(task, doc_id) -> per-sample score over every task of the variant."""
        return {(task, doc): value for k, task in self.quality if k == key
                for doc, value in self.scores(key, task, metric).items()}

    def kept(self, reference: str, variant: str, task: str) -> dict:
        """doc_id -> 1.0 where the variant generated exactly the reference's text, else 0.0
        (samples with a generation in both records; none for loglikelihood tasks)."""
        if (reference, task) not in self.quality or (variant, task) not in self.quality:
            return {}
        a, b = self.samples(reference, task), self.samples(variant, task)
        return {doc: float(a[doc]["generation"] == b[doc]["generation"]) for doc in a.keys() & b.keys()
                if "generation" in a[doc] and "generation" in b[doc]}

    def paired(self, reference: str, variant: str, tasks: list[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the samples both variants answered, over `tasks` (pooled when several)."""
        ref, var = [], []
        for task in tasks:
            if (reference, task) not in self.quality or (variant, task) not in self.quality:
                continue
            a, b = self.scores(reference, task, metric), self.scores(variant, task, metric)
            for doc in sorted(set(a) & set(b), key=str):
                ref.append(a[doc])
                var.append(b[doc])
        return np.array(ref), np.array(var)


def collect(cfg: ReportConfig) -> Collection:
    results_dir = Path(cfg.results_dir)
    found = list(store.iter_records(results_dir))
    if not found:
        raise ConfigError(f"results_dir={cfg.results_dir!r} holds no complete records; "
                          "run python -m evaluate run first")
    found = _apply_filters(cfg, found)
    variants = _variants(found)
    collection = Collection(variants, {}, {}, {}, {})
    by_slot = defaultdict(list)
    for folder, record in found:
        by_slot[(record["artifact"]["fingerprint"], record["task"])].append(Entry(folder, record))
    _link_baselines(collection, [e for entries in by_slot.values() for e in entries])
    baseline_first = sorted(by_slot.items(), key=lambda item: not variants[item[0][0]].is_baseline)
    for (key, task), entries in baseline_first:
        entry = _choose(collection, key, task, entries)
        metrics = entry.record.get("metrics") or {}
        if task == "speed":
            collection.speed[key] = entry
        elif task == "kl_divergence":
            collection.kl[key] = entry
        elif "accuracy" in metrics and (Path(entry.folder) / store.SAMPLES).is_file():
            collection.quality[(key, task)] = entry
        elif "word_perplexity" in metrics or "bits_per_byte" in metrics:
            collection.perplexity[(key, task)] = entry
    _note_missing_tasks(collection)
    return collection


def bits_text(bits) -> str:
    """Bits as the report prints them: "4" (a nominal width), "6.51" (effective bits per weight)."""
    if bits is None or (isinstance(bits, float) and math.isnan(bits)):
        return "–"
    return str(int(bits)) if float(bits).is_integer() else f"{float(bits):.2f}"


def nominal_level(bits) -> str:
    """The level of a step that is a bit width alone ("w4"); a GGUF level is named instead."""
    return f"w{bits_text(bits)}"


def step_text(level: str, bits) -> str:
    """A step of a method's ladder in a sentence: "4 bits", or "Q4_K_M (6.51 bits per weight)"."""
    if level == nominal_level(bits):
        return f"{bits_text(bits)} bits"
    return f"{level} ({bits_text(bits)} bits per weight)"


def size_label(size_b: Optional[float]) -> str:
    if size_b is None or (isinstance(size_b, float) and math.isnan(size_b)):
        return "?"
    if size_b >= 1:
        return f"{size_b:.3g}B"
    if size_b >= 1e-3:
        return f"{size_b * 1e3:.3g}M"
    return f"{size_b * 1e6:.3g}K"


def _apply_filters(cfg: ReportConfig, found: list) -> list:
    def check(setting: str, wanted: list, available: set) -> None:
        unknown = sorted(set(wanted) - available)
        if unknown:
            raise ConfigError(f"{setting}={unknown} matches no record in {cfg.results_dir}; available: "
                              f"{', '.join(sorted(available))}")

    artifacts = [record["artifact"] for _, record in found]
    check("models", cfg.models, {a["model"] for a in artifacts})
    check("methods", cfg.methods, {a["method"] for a in artifacts})
    check("tasks", cfg.tasks, {r["task"] for _, r in found} - set(SPECIAL_TASKS))
    kept = []
    for folder, record in found:
        artifact = record["artifact"]
        if cfg.models and artifact["model"] not in cfg.models:
            continue
        if cfg.methods and artifact["method"] not in cfg.methods and not artifact.get("is_baseline"):
            continue
        if cfg.tasks and record["task"] not in cfg.tasks and record["task"] not in SPECIAL_TASKS:
            continue
        kept.append((folder, record))
    return kept


def _variants(found: list) -> dict[str, Variant]:
    variants: dict[str, Variant] = {}
    for _, record in found:
        a = record["artifact"]
        if a["fingerprint"] in variants:
            continue
        size_b = a.get("params_b")
        if size_b is None and a.get("num_parameters"):
            size_b = a["num_parameters"] / 1e9
        nominal, level = int(a["weight_bits"]), a.get("level")
        variants[a["fingerprint"]] = Variant(
            key=a["fingerprint"], model=a["model"], size_b=size_b, method=a["method"],
            bits=a.get("bits_per_weight") or nominal, group=a.get("group_size"), label=a.get("label") or a["method"],
            is_baseline=bool(a.get("is_baseline")), model_kind=a.get("model_kind", ""), path=a.get("path", ""),
            size_on_disk_bytes=a.get("size_on_disk_bytes"), weight_bits=nominal, level=level or nominal_level(nominal),
            scheme=f"{a['method']} {level}" if level else "", fallback=a.get("fallback"),
        )
    by_model = defaultdict(list)
    for variant in variants.values():
        by_model[variant.model].append(variant)
    for family in by_model.values():  # a quantized model counts packed parameters: use the baseline's size
        sizes = [v.size_b for v in family if v.is_baseline and v.size_b] or [v.size_b for v in family if v.size_b]
        for variant in family:
            variant.size_b = max(sizes) if sizes else None
    seen = defaultdict(list)
    for variant in variants.values():
        seen[(variant.model, variant.label)].append(variant)
    for twins in seen.values():  # same label, different artifacts (e.g. calibration sets)
        if len(twins) > 1:
            for variant in twins:
                variant.label = f"{variant.label}@{variant.key[:6]}"
                variant.scheme = f"{variant.scheme}@{variant.key[:6]}" if variant.scheme else ""
    for variant in variants.values():
        variant.scheme = variant.scheme or variant.label
    return variants


def _link_baselines(collection: Collection, entries: list[Entry]) -> None:
    variants = collection.variants
    named = {}
    for entry in entries:
        baseline = entry.record.get("baseline") or {}
        if baseline.get("baseline_fingerprint"):
            named[entry.record["artifact"]["fingerprint"]] = baseline["baseline_fingerprint"]
    for variant in variants.values():
        if variant.is_baseline:
            continue
        key = named.get(variant.key)
        if key not in variants:
            candidates = [v.key for v in variants.values() if v.is_baseline and v.model == variant.model]
            key = candidates[0] if candidates else None
            if len(candidates) > 1:
                collection.notes.append(Note("warning", variant.label, f"{len(candidates)} baselines for model "
                                             f"{variant.model}; compared with {variants[key].label}"))
        variant.baseline_key = key
        if key is None:
            collection.notes.append(Note("warning", f"{variant.model} {variant.label}",
                                         "no baseline (method=none) records of this model: no deltas, tiers or tests"))


def _note_missing_tasks(collection: Collection) -> None:
    task_sets = defaultdict(set)
    for key, task in collection.quality:
        task_sets[key].add(task)
        variant = collection.variants[key]
        if variant.baseline_key and (variant.baseline_key, task) not in collection.quality:
            collection.notes.append(Note("warning", f"{variant.model} {variant.label} {task}",
                                         "the baseline has no record of this task: no delta for it"))
    if len({frozenset(tasks) for tasks in task_sets.values()}) > 1:
        collection.notes.append(Note("info", "tasks", "variants were evaluated on different task sets: pooled "
                                     "accuracies (decisions, Pareto plots) compare only variants with the same set"))


def _choose(collection: Collection, key: str, task: str, entries: list[Entry]) -> Entry:
    variant = collection.variants[key]
    wanted = None
    if not variant.is_baseline and variant.baseline_key and task not in SPECIAL_TASKS:
        slot = (variant.baseline_key, task)
        chosen = collection.quality.get(slot) or collection.perplexity.get(slot)
        wanted = chosen.record.get("settings_fingerprint") if chosen else None
    matching = [e for e in entries if wanted and e.record.get("settings_fingerprint") == wanted]
    if wanted and not matching:
        collection.notes.append(Note("warning", f"{variant.model} {variant.label} {task}",
                                     "evaluated with other settings than its baseline (limit, prompts, data); "
                                     "compared anyway on the samples both answered"))
    pool = matching or entries
    best = max(pool, key=lambda e: (e.record.get("n") or 0, _mtime(e.folder)))
    if len(entries) > 1:
        collection.notes.append(Note("info", f"{variant.model} {variant.label} {task}", f"{len(entries) - 1} other "
                                     f"record(s) of this task set aside (kept n={best.record.get('n')})"))
    return best


def _mtime(folder: Path) -> float:
    try:
        return (Path(folder) / "manifest.json").stat().st_mtime
    except OSError:
        return 0.0
