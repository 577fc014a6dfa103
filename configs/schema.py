"""Typed schemas of every config the lab composes.

Group YAMLs in `hydra_conf/` merge into these nodes, so a typo in a key or a value of the
wrong type fails at composition. Checks that need more than a type (choices, ranges,
combinations) live in `validate()` and run when the entry point converts the composed
config with `OmegaConf.to_object`, before any weight is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from configs.calibration_sources import resolve
from configs.errors import ConfigError, check_seed, check_threads, choices_error

DTYPES = ("float32", "float16", "bfloat16")
MODEL_KINDS = ("base", "instruct")
DEVICES = ("auto", "cpu", "cuda")
PER_CHANNEL = -1  # group_size value meaning one scale per output channel
# The lab's self-trained tiny family (models/tiny/ builds them): its sizes and build profiles.
TINY_SIZES = ("tiny-s", "tiny-m", "tiny-l")
TINY_PROFILES = ("full", "quick")
MINIATURE_PREFIX = "mini-"  # a miniature's model name: mini-<registered name>


@dataclass
class ModelConfig:
    """Where a model comes from: path, else a miniature of `architecture`, else tiny_size,
    else hub_id."""

    name: str = MISSING  # short name used in artifact paths and reports
    hub_id: Optional[str] = None  # Hugging Face repo id, e.g. Qwen/Qwen2.5-3B-Instruct
    path: Optional[str] = None  # a local checkpoint folder (wins over hub_id)
    tiny_size: Optional[str] = None  # a size of the lab's self-trained tiny family
    tiny_profile: str = "full"  # tiny family build profile: full, or quick (tests)
    revision: str = "main"
    params_b: Optional[float] = None  # parameter count in billions, for size-vs-method maps
    kind: str = "instruct"  # base or instruct: a base model is not expected to follow formats
    dtype: str = "bfloat16"  # dtype the model is loaded and quantized in
    trust_remote_code: bool = False
    # config.json fields of the released checkpoint: the dry run's numbers, the miniature's shape
    architecture: Optional[Dict[str, Any]] = None
    miniature: bool = False  # a random-init, shrunk model of `architecture` (models/miniature.py)
    miniature_seed: int = 0

    def validate(self) -> None:
        if self.miniature and not self.path:
            if not self.architecture:
                raise ConfigError(f"model.miniature=true: model {self.name!r} has no model.architecture to shrink; "
                                  "pick a registered Hub model (model=qwen3-0.6b) or set model.miniature=false")
            check_seed("model.miniature_seed", self.miniature_seed)
            if not self.name.startswith(MINIATURE_PREFIX):  # its artifacts and results are not the real model's
                self.name = MINIATURE_PREFIX + self.name
            self.params_b = None  # the registered size is the real model's (the manifest counts the miniature's)
        if self.dtype not in DTYPES:
            raise choices_error("model.dtype", self.dtype, DTYPES)
        if self.kind not in MODEL_KINDS:
            raise choices_error("model.kind", self.kind, MODEL_KINDS)
        if (self.tiny_size or self.miniature) and not self.path:
            if self.tiny_size and self.tiny_size not in TINY_SIZES:
                raise choices_error("model.tiny_size", self.tiny_size, TINY_SIZES)
            if self.tiny_profile not in TINY_PROFILES:
                raise choices_error("model.tiny_profile", self.tiny_profile, TINY_PROFILES)
        if not (self.path or self.hub_id or self.tiny_size or self.miniature):
            raise ConfigError(
                f"model {self.name!r} has no source: set model.path=/local/folder, "
                "model.hub_id=org/name or pick a registered model (model=<name>)"
            )


@dataclass
class QuantConfig:
    """Settings every weight quantizer understands; each method says which values it takes."""

    bits: int = 16
    group_size: int = 128  # -1: per output channel
    symmetric: bool = True
    type: Optional[str] = None  # a GGUF level (method=gguf only), e.g. Q4_K_M


@dataclass
class CalibrationConfig:
    """Calibration text for methods that need it (AWQ, GPTQ, SmoothQuant, AutoRound).

    `source` is a named set (a YAML in hydra_conf/calibration/, which also fills in where
    its records come from: dataset ... pack) or `file:/path/to/data.{txt,jsonl}`.
    `configs.calibration_sources` checks it; `calibration/` loads it (see
    calibration/loading.py for how records become samples).
    """

    source: str = "tiny"  # a named set, or file:/path/to/data.{txt,jsonl,json,parquet}
    num_samples: int = 128
    seq_len: int = 512  # tokens per sample (longer records are cut)
    seed: int = 0  # which records are drawn
    apply_chat_template: bool = False  # wrap samples in the model's chat template
    # Where the records come from (a named set's YAML sets these):
    dataset: Optional[str] = None  # datasets.load_dataset path (a Hub id)
    subset: Optional[str] = None  # its config name, e.g. wikitext-2-raw-v1
    split: str = "train"
    data_files: Optional[str] = None  # files to read; a local file in the same schema reads it offline
    text_field: str = "text"  # the text; the prompt if response_field is set; or a list of chat messages
    response_field: Optional[str] = None  # e.g. a worked solution, rendered as the assistant turn
    pack: bool = False  # concatenate records and cut seq_len windows, instead of one record per sample

    def validate(self) -> None:
        for key in ("num_samples", "seq_len"):
            if getattr(self, key) < 1:
                raise ConfigError(f"calibration.{key}={getattr(self, key)} must be >= 1")
        check_seed("calibration.seed", self.seed)
        resolve(self)  # an unknown source is one line here, before anything loads


@dataclass
class QuantizeJobConfig:
    """`python -m quantize`: one model, one method, one artifact."""

    model: ModelConfig = field(default_factory=ModelConfig)
    method: Dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    quant: QuantConfig = field(default_factory=QuantConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    output_dir: str = "lab/artifacts"
    device: str = "auto"  # auto: CUDA when available, else CPU
    seed: int = 0
    overwrite: bool = False  # re-quantize even if an identical artifact exists
    threads: Optional[int] = None  # torch CPU threads; None leaves the default
    extra: List[str] = field(default_factory=list)  # free-form tags recorded in the manifest

    def validate(self) -> None:
        self.model.validate()
        check_seed("seed", self.seed)
        check_threads(self.threads)
        if self.calibration.source == "auto":  # the tiny family's own text, else OpenMath
            own_text = (self.model.tiny_size or self.model.miniature) and not self.model.path  # the tiny tokenizer's
            self.calibration.source = "tiny" if own_text else "openmath"
        self.calibration.validate()
        if self.device not in DEVICES:
            raise choices_error("device", self.device, DEVICES)
