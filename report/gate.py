"""The CI gate: `python -m evaluate report gate.min_recovery=0.95` exits 1 and names
every variant whose recovery (variant accuracy / baseline accuracy, on the primary
metric) is under the threshold: pooled over the tasks above the model's floor, or per
task with `gate.per_task=true` (tasks at the floor cannot show a loss and are not
judged). A suspect pipeline fails the gate too (a record's own baseline gate, a baseline
at its floor with well-formed answers, a model whose variants are all at the floor): a
recovery gate that passed on one model must not hide another model whose run is broken.
`gate.fail_on_suspect=false` only lists them; `true` gates on them without a recovery
threshold. A gate with nothing to judge fails: an empty store, or one where every task sits
at the floor, must not pass CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from configs.report_schema import AT_FLOOR, GateConfig
from report.quality import POOLED


@dataclass
class GateResult:
    enabled: bool
    passed: bool = True
    checked: int = 0
    failures: list[str] = field(default_factory=list)
    ungated_suspects: int = 0

    def message(self) -> str:
        if not self.enabled:
            return "gate: off"
        if self.passed:
            ungated = (f"; {self.ungated_suspects} suspect-pipeline warnings not gated (gate.fail_on_suspect=false)"
                       if self.ungated_suspects else "")
            return f"gate: passed ({self.checked} checks{ungated})"
        return "gate: FAILED\n" + "\n".join(f"  {line}" for line in self.failures)


def check(quality: pd.DataFrame, suspects: list[str], gate: GateConfig) -> GateResult:
    result = GateResult(enabled=gate.enabled)
    if not gate.enabled:
        return result
    if gate.min_recovery is not None:
        rows = quality.iloc[0:0] if quality.empty else quality[~quality.is_baseline.astype(bool)]
        if not rows.empty:
            rows = rows[rows.scope != POOLED] if gate.per_task else rows[rows.scope == POOLED]
            rows = rows[rows.tier != AT_FLOOR]
        for row in rows.itertuples():
            recovery = row.recovery
            if recovery is None or math.isnan(recovery):
                continue
            result.checked += 1
            if round(recovery, 9) < gate.min_recovery:  # 0.74 / 0.80 is 0.92499...: exactly 92.5% passes 0.925
                where = f" on {row.scope}" if gate.per_task else ""
                result.failures.append(f"{row.model} {row.label}{where}: recovery {recovery:.1%} < "
                                       f"{gate.min_recovery:.1%} (delta {row.delta_pp:+.1f} pp, n={row.n_paired:.0f})")
        if result.checked == 0:
            result.failures.append("no variant with a baseline to check (is the store empty or filtered away, "
                                   "or is every task at the floor?)")
    if gate.gates_suspects:
        result.checked += 1
        result.failures += [f"suspect pipeline: {line}" for line in suspects]
    else:
        result.ungated_suspects = len(suspects)
    result.passed = not result.failures
    return result
