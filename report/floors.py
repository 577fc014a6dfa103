"""The floor check: can a task show a drop at all for this model? And the shapes of a
broken pipeline that only the whole store shows.

- Floor of a task: chance for multiple choice (the mean of 1 / choices over the samples,
  the choices counted from the lettered option lines of the prompt, or `floor.chance.<task>`;
  a stock multiple-choice record that does not tell is assumed to have
  `floor.unknown_choices`), zero for generation.
- Floor check, per model and task: the baseline must be significantly above floor + the
  concerning threshold's size (10 pp by default: a variant cannot fall below the floor,
  so with less headroom a drop into "unacceptable" cannot show). Exact binomial test,
  one-sided, at alpha. A task that fails is left out of that model's tiers (per task and
  pooled) with the reason; its rows still show flips, changed generations and KL.
- At the floor (the gate): not significantly above floor + `floor.within_pp` (exact
  binomial test). Suspect pipeline: a baseline at its floor while `floor.well_formed` of
  its answers are well-formed ("all wrong but well-formed": answer key, scoring or a
  prompt problem, rarely quantization), and a model whose variants, baseline included,
  are all at the floor on every task.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import stats

from configs.report_schema import ReportConfig
from report.collect import Collection
from report.provenance import Suspect

OPTION_LINE = re.compile(r"^\s*([A-Z])[.)]\s", re.MULTILINE)


@dataclass(frozen=True)
class FloorCheck:
    model: str
    task: str
    chance: float  # the floor
    chance_from: str  # "prompt options", "setting", "assumed", "generation"
    baseline_accuracy: float
    correct: int
    n: int
    needed: float  # floor + headroom: the baseline must be significantly above this
    p_value: float  # exact binomial, H1: baseline accuracy > needed
    passes: bool
    at_floor: bool  # not significantly above floor + floor.within_pp
    format_compliance: float  # nan for tasks without a format

    @property
    def reason(self) -> str:
        floor = f"chance {self.chance:.1%} ({self.chance_from})" if self.chance else "floor 0% (generation)"
        verdict = "significantly above" if self.passes else "not significantly above"
        return (f"baseline {self.baseline_accuracy:.1%} ({self.correct}/{self.n}) is {verdict} {floor} + "
                f"{100 * (self.needed - self.chance):g} pp = {self.needed:.1%} (exact binomial p {self.p_value:.3g})")


def floor_checks(collection: Collection, cfg: ReportConfig) -> dict[tuple[str, str], FloorCheck]:
    """(model, task) -> the check of that model's baseline on that task."""
    checks = {}
    headroom = -cfg.tiers.concerning / 100
    for (key, task) in sorted(collection.quality, key=lambda kt: kt[1]):
        variant = collection.variants[key]
        if not variant.is_baseline or (variant.model, task) in checks:
            continue
        chance, source = chance_of(collection, key, task, cfg)
        scores = collection.scores(key, task, cfg.primary_metric)
        correct, n = int(round(sum(scores.values()))), len(scores)
        needed = chance + headroom
        p = _p_above(correct, n, needed)
        fmt = collection.scores(key, task, "format_compliance")
        checks[(variant.model, task)] = FloorCheck(
            model=variant.model, task=task, chance=chance, chance_from=source,
            baseline_accuracy=correct / n if n else math.nan, correct=correct, n=n, needed=needed, p_value=p,
            passes=p < cfg.stats.alpha, at_floor=_at_floor(correct, n, chance, cfg),
            format_compliance=float(np.mean(list(fmt.values()))) if fmt else math.nan)
    return checks


def chance_of(collection: Collection, key: str, task: str, cfg: ReportConfig) -> tuple[float, str]:
    if task in cfg.floor.chance:
        return float(cfg.floor.chance[task]), "setting"
    choices = [_choices(row) for row in collection.samples(key, task).values()]
    counted = [c for c in choices if c]
    if counted and len(counted) == len(choices):
        return float(np.mean([1 / c for c in counted])), "prompt options"
    if collection.quality[(key, task)].record.get("task_type") == "multiple_choice":
        return 1 / cfg.floor.unknown_choices, f"assumed {cfg.floor.unknown_choices} choices"
    return 0.0, "generation"


def tiered_tasks(checks: dict, model: str, tasks: list[str]) -> list[str]:
    """The tasks of `tasks` that enter the model's tiers (checked and passed)."""
    return [t for t in tasks if (model, t) in checks and checks[(model, t)].passes]


def suspects(collection: Collection, checks: dict, cfg: ReportConfig) -> list[Suspect]:
    found = []
    for check in checks.values():
        if check.at_floor and check.format_compliance >= cfg.floor.well_formed:
            found.append(Suspect(
                f"{check.model} baseline {check.task}",
                f"at its floor ({check.baseline_accuracy:.1%}, not significantly above {check.chance:.1%} + "
                f"{cfg.floor.within_pp:g} pp) while {check.format_compliance:.0%} of its answers are well-formed: "
                "all wrong but well-formed points at the answer key, the scoring or the prompt, not at quantization",
                _records(collection, check.model, {check.task})))
    return found + _models_all_at_floor(collection, checks, cfg)


def _models_all_at_floor(collection: Collection, checks: dict, cfg: ReportConfig) -> list[Suspect]:
    at_floor = defaultdict(list)  # model -> one bool per (variant, task)
    for key, task in collection.quality:
        variant = collection.variants[key]
        check = checks.get((variant.model, task))
        if check is None:
            continue
        scores = collection.scores(key, task, cfg.primary_metric)
        at_floor[variant.model].append(_at_floor(int(round(sum(scores.values()))), len(scores), check.chance, cfg))
    found = []
    for model, flags in sorted(at_floor.items()):
        variants = {k for k, _ in collection.quality if collection.variants[k].model == model}
        if len(variants) > 1 and all(flags):
            found.append(Suspect(model, f"every variant, baseline included ({len(variants)}), is at the floor on "
                                 "every task: the pipeline (loader, prompts, scoring), not quantization, is the "
                                 "likely cause", _records(collection, model)))
    return found


def _records(collection: Collection, model: str, tasks: Optional[set] = None) -> frozenset:
    return frozenset((k, t) for k, t in collection.quality
                     if collection.variants[k].model == model and (tasks is None or t in tasks))


def _choices(row: dict) -> int:
    if isinstance(row.get("choices"), list):
        return len(row["choices"])
    letters = OPTION_LINE.findall(str(row.get("prompt", "")))
    run = 0  # the options are the run A, B, C, ... in order
    for letter in letters:
        if ord(letter) - ord("A") == run:
            run += 1
    return run if run >= 2 else 0


def _p_above(correct: int, n: int, level: float) -> float:
    """Exact binomial p-value of "accuracy > level"."""
    if n == 0:
        return math.nan
    if level >= 1:
        return 1.0
    if level <= 0:
        return 0.0 if correct > 0 else 1.0
    return float(stats.binomtest(correct, n, level, alternative="greater").pvalue)


def _at_floor(correct: int, n: int, chance: float, cfg: ReportConfig) -> bool:
    return n > 0 and not _p_above(correct, n, chance + cfg.floor.within_pp / 100) < cfg.stats.alpha
