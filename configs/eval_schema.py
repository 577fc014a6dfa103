"""Schemas of `python -m evaluate run` (and, later, sweep and report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

from configs.errors import ConfigError, check_seed, check_threads, choices_error
from configs.schema import DEVICES

CHAT_TEMPLATE_CHOICES = ("auto", "true", "false")


@dataclass
class SpeedConfig:
    """Speed and memory, measured the way optimum-benchmark does (warmup, fixed token counts)."""

    enabled: bool = True
    prompt_tokens: int = 64
    new_tokens: int = 32
    warmup: int = 1
    repeats: int = 3
    batch_sizes: List[int] = field(default_factory=lambda: [1])  # the eval batch size is added


@dataclass
class DiagnosticsConfig:
    """Comparisons against the baseline (method=none artifact of the same model)."""

    kl_prompts: int = 16  # fixed prompts for next-token KL divergence
    kl_top_k: int = 256  # reference support: top-k tokens of the baseline + the rest as one bucket
    kl_max_tokens: int = 128
    gate_min_baseline_compliance: float = 0.80
    gate_max_8bit_drop: float = 0.10


@dataclass
class EvalConfig:
    """Which tasks, on which data, with which generation settings."""

    tasks: List[str] = field(default_factory=list)
    limit: Optional[int] = None  # samples per task; None = all
    batch_size: int = 16
    num_fewshot: Optional[int] = None
    max_gen_toks: Optional[int] = None  # None: the task's own
    apply_chat_template: str = "auto"  # auto: when the tokenizer has a chat template
    # For chat templates with a thinking switch (Qwen3's `enable_thinking`): false = answer
    # directly (the template's empty think block); true = think first, and only the text
    # after think_end_token is scored; null = whatever the template does by default.
    enable_thinking: Optional[bool] = False
    think_end_token: str = "</think>"
    data_files: Dict[str, str] = field(default_factory=dict)  # task -> local file, or tiny:<task>
    perplexity_task: Optional[str] = None  # a loglikelihood_rolling task for perplexity
    include_path: Optional[str] = None  # a folder of your own lm-eval task YAMLs
    seed: int = 0

    def validate(self) -> None:
        self.apply_chat_template = str(self.apply_chat_template).lower()  # Hydra reads `false` as a bool
        if not self.tasks:
            raise ConfigError("eval.tasks is empty; pick an eval set (eval=boxed, eval=tiny) or eval.tasks=[arc_easy,...]")
        if self.apply_chat_template not in CHAT_TEMPLATE_CHOICES:
            raise choices_error("eval.apply_chat_template", self.apply_chat_template, CHAT_TEMPLATE_CHOICES)
        if self.enable_thinking and not self.think_end_token:
            raise ConfigError("eval.enable_thinking=true needs eval.think_end_token (the token that ends the thinking, "
                              "e.g. '</think>'), so that only the answer after it is scored")
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size={self.batch_size} must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"eval.limit={self.limit} must be >= 1 (or null for all samples)")
        check_seed("eval.seed", self.seed)


@dataclass
class EvalRunConfig:
    """`python -m evaluate run`: one artifact, a set of tasks, records in the results store."""

    artifact: str = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    baseline: Optional[str] = "auto"  # auto: the method=none artifact of the same model; null: none
    results_dir: str = "lab/results"
    device: str = "auto"
    threads: Optional[int] = None

    def validate(self) -> None:
        self.eval.validate()
        if self.device not in DEVICES:
            raise choices_error("device", self.device, DEVICES)
        check_threads(self.threads)
