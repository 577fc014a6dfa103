"""Schema of `python -m evaluate report`: the method comparison report.

The report reads only the results store. Every threshold it applies (tiers, cliffs, the
decision matrix, the CI gate) is a setting here, so a reader can see and change the rule
that produced a verdict. Percentage-point thresholds are deltas against the model's
baseline (method=none), so they are <= 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from configs.errors import ConfigError, choices_error

TIERS = ("negligible", "acceptable", "concerning", "unacceptable")  # best to worst
INCONCLUSIVE = "inconclusive"  # the interval does not fit one tier
AT_FLOOR = "at floor"  # the baseline cannot show a drop on this task: left out of the tiers
PRIMARY_METRICS = ("accuracy", "rescored_accuracy")
TIER_SCOPES = ("pooled", "worst_task")
CORRECTIONS = ("holm", "bonferroni", "holm-sidak", "sidak", "simes-hochberg", "hommel", "fdr_bh", "fdr_by", "none")
FORMATS = ("html", "markdown", "csv")
MEMORY_BASES = ("auto", "peak", "disk")


@dataclass
class TierConfig:
    """Quality tiers on the worse of the accuracy and format-compliance deltas (points). A
    tier is stated only where each delta's interval lies in a band (after the correction);
    otherwise the variant is "inconclusive" (docs/verdicts.md)."""

    negligible: float = -3.0  # delta >= this: negligible
    acceptable: float = -5.0  # delta >= this: acceptable
    concerning: float = -10.0  # delta >= this: concerning; below: unacceptable
    viable: str = "acceptable"  # the worst tier still called viable (viability map, decisions)
    scope: str = "pooled"  # pooled: all tasks' samples together; worst_task: the worst task's tier

    def validate(self) -> None:
        if not 0 >= self.negligible >= self.acceptable >= self.concerning:
            raise ConfigError(
                f"tiers.negligible={self.negligible}, tiers.acceptable={self.acceptable}, "
                f"tiers.concerning={self.concerning} must satisfy 0 >= negligible >= acceptable >= concerning"
            )
        if self.viable not in TIERS:
            raise choices_error("tiers.viable", self.viable, TIERS)
        if self.scope not in TIER_SCOPES:
            raise choices_error("tiers.scope", self.scope, TIER_SCOPES)


@dataclass
class StatsConfig:
    """Paired statistics of a variant against its baseline, its next higher bit width and
    the other methods at its bit width (see report/stats.py and docs/verdicts.md)."""

    alpha: float = 0.05  # significance level (after correction); intervals are at 1 - alpha
    power: float = 0.80  # of the minimum detectable effect and of the pairs that would decide a tier
    correction: str = "holm"  # statsmodels multipletests method, per scope (task or pooled); none: raw p-values
    exact_below: int = 25  # McNemar is the exact binomial test below this many discordant pairs

    @property
    def confidence(self) -> float:
        """Of every interval: the dual of a two-sided test at alpha."""
        return 1 - self.alpha

    def validate(self) -> None:
        for name in ("alpha", "power"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ConfigError(f"stats.{name}={value} must be between 0 and 1")
        if self.correction not in CORRECTIONS:
            raise choices_error("stats.correction", self.correction, CORRECTIONS)
        if self.exact_below < 0:
            raise ConfigError(f"stats.exact_below={self.exact_below} must be >= 0")


@dataclass
class FloorConfig:
    """The floor check: a task enters a model's tiers only when the baseline is significantly
    above the task's floor (chance for multiple choice, zero for generation) by the
    concerning threshold (by default 10 pp, so that a drop into unacceptable can show)."""

    # task -> chance accuracy, where the samples do not tell (+floor.chance.<task>=0.25)
    chance: Dict[str, float] = field(default_factory=dict)
    unknown_choices: int = 2  # multiple choice with an unknown number of choices: assume this many (cautious)
    within_pp: float = 1.0  # the gate: "at the floor" = not significantly above floor + this
    well_formed: float = 0.8  # the gate: a baseline at the floor with this format compliance is suspect

    def validate(self) -> None:
        for task, chance in self.chance.items():
            if not 0 <= chance < 1:
                raise ConfigError(f"floor.chance.{task}={chance} must be a probability in [0, 1)")
        if self.unknown_choices < 2:
            raise ConfigError(f"floor.unknown_choices={self.unknown_choices} must be >= 2")
        if self.within_pp < 0:
            raise ConfigError(f"floor.within_pp={self.within_pp} must be >= 0 (points above the floor)")
        if not 0 <= self.well_formed <= 1:
            raise ConfigError(f"floor.well_formed={self.well_formed} must be between 0 and 1")


@dataclass
class CliffConfig:
    """A cliff: going down one bit width drops `tier_drop` tiers, or the delta falls below
    `below_pp` (default: the concerning threshold, i.e. into unacceptable)."""

    tier_drop: int = 2
    below_pp: Optional[float] = None  # null: tiers.concerning

    def validate(self) -> None:
        if not 1 <= self.tier_drop <= len(TIERS) - 1:
            raise ConfigError(f"cliff.tier_drop={self.tier_drop} must be between 1 and {len(TIERS) - 1}")
        if self.below_pp is not None and self.below_pp > 0:
            raise ConfigError(f"cliff.below_pp={self.below_pp} must be <= 0 (a delta in points)")


@dataclass
class CostConfig:
    """Deployment cost from the speed records."""

    usd_per_gpu_hour: float = 2.0  # price of the device the speed records were measured on
    batch_size: int = 1  # which measured batch size the throughput and latency columns use
    memory_basis: str = "auto"  # auto: CUDA peak if measured on CUDA, else disk x disk_memory_factor
    disk_memory_factor: float = 1.2  # memory estimate from size on disk (weights + runtime overhead)

    def validate(self) -> None:
        if self.usd_per_gpu_hour < 0:
            raise ConfigError(f"cost.usd_per_gpu_hour={self.usd_per_gpu_hour} must be >= 0")
        if self.batch_size < 1:
            raise ConfigError(f"cost.batch_size={self.batch_size} must be >= 1")
        if self.memory_basis not in MEMORY_BASES:
            raise choices_error("cost.memory_basis", self.memory_basis, MEMORY_BASES)
        if self.disk_memory_factor < 1:
            raise ConfigError(f"cost.disk_memory_factor={self.disk_memory_factor} must be >= 1")


@dataclass
class DecisionConfig:
    """The decision matrix: best variant per memory budget and per scenario."""

    memory_budgets_gb: List[float] = field(default_factory=lambda: [4.0, 8.0, 16.0, 24.0, 80.0])  # GB = 2^30 bytes
    quality_floor: str = "acceptable"  # worst tier a recommended variant may have
    min_accuracy: Optional[float] = None  # optional absolute floor (0..1) for the throughput scenario

    def validate(self) -> None:
        if not self.memory_budgets_gb or any(b <= 0 for b in self.memory_budgets_gb):
            raise ConfigError(f"decisions.memory_budgets_gb={list(self.memory_budgets_gb)} must be positive numbers")
        if self.quality_floor not in TIERS:
            raise choices_error("decisions.quality_floor", self.quality_floor, TIERS)
        if self.min_accuracy is not None and not 0 <= self.min_accuracy <= 1:
            raise ConfigError(f"decisions.min_accuracy={self.min_accuracy} must be between 0 and 1")


@dataclass
class GateConfig:
    """CI gate: exit 1 naming every variant whose recovery is under `min_recovery`."""

    min_recovery: Optional[float] = None  # e.g. 0.95; null: no gate
    per_task: bool = False  # false: pooled recovery; true: every task must pass
    # a suspect pipeline (a record's own baseline gate, a baseline at its floor with well-formed
    # answers, a model all at the floor) fails the gate: null = whenever min_recovery is set
    fail_on_suspect: Optional[bool] = None

    def validate(self) -> None:
        if self.min_recovery is not None and not 0 < self.min_recovery <= 2:
            raise ConfigError(f"gate.min_recovery={self.min_recovery} must be a ratio like 0.95 (0 < r <= 2)")

    @property
    def enabled(self) -> bool:
        return self.min_recovery is not None or bool(self.fail_on_suspect)

    @property
    def gates_suspects(self) -> bool:
        return self.fail_on_suspect if self.fail_on_suspect is not None else self.min_recovery is not None


@dataclass
class ReportConfig:
    """`python -m evaluate report`: one HTML, one Markdown and CSV tables from the results store."""

    results_dir: str = "lab/results"
    output_dir: Optional[str] = None  # null: <results_dir>/report
    title: str = "Quantization method comparison"
    models: List[str] = field(default_factory=list)  # filters; empty: all (baselines always kept)
    methods: List[str] = field(default_factory=list)
    tasks: List[str] = field(default_factory=list)
    primary_metric: str = "accuracy"  # accuracy (strict boxed) or rescored_accuracy (lenient)
    formats: List[str] = field(default_factory=lambda: list(FORMATS))
    tiers: TierConfig = field(default_factory=TierConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    floor: FloorConfig = field(default_factory=FloorConfig)
    cliff: CliffConfig = field(default_factory=CliffConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    decisions: DecisionConfig = field(default_factory=DecisionConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    def validate(self) -> None:
        if self.primary_metric not in PRIMARY_METRICS:
            raise choices_error("primary_metric", self.primary_metric, PRIMARY_METRICS)
        for fmt in self.formats:
            if fmt not in FORMATS:
                raise choices_error("formats", fmt, FORMATS)
        for part in (self.tiers, self.stats, self.floor, self.cliff, self.cost, self.decisions, self.gate):
            part.validate()
