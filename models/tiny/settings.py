"""Everything that decides what a tiny-family build produces (all of it goes into the
cache key): model sizes, training settings and the build profiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from common.machine import cpu_flags
from configs.schema import TINY_PROFILES
from configs.schema import TINY_SIZES as SIZES
from models.tiny.generator import DataSettings

END_OF_TEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"


@dataclass(frozen=True)
class TokenizerSettings:
    vocab_size: int = 1024
    min_frequency: int = 2


@dataclass(frozen=True)
class SizeConfig:
    """A Qwen3 shape. hidden_size, intermediate_size and the heads' widths are multiples
    of 128, so quantization group sizes 32/64/128 divide every linear layer's input."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int = 64
    learning_rate: float = 4e-3

    @property
    def layer_parameters(self) -> int:
        """Weights of the decoder layers: what a training step's cost grows with."""
        heads = 2 * self.num_attention_heads + 2 * self.num_key_value_heads  # q, o, k, v
        per_layer = self.hidden_size * (heads * self.head_dim + 3 * self.intermediate_size)
        return self.num_hidden_layers * per_layer

    def __post_init__(self) -> None:
        widths = {
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_attention_heads * head_dim": self.num_attention_heads * self.head_dim,
            "num_key_value_heads * head_dim": self.num_key_value_heads * self.head_dim,
        }
        for name, width in widths.items():
            if width % 128:
                raise ValueError(f"{name} = {width} is not a multiple of 128")


@dataclass(frozen=True)
class TrainSettings:
    """Warmup, then a constant learning rate until the dev score plateaus or
    `max_stable_steps`, then a linear decay to zero over `decay_fraction` of the steps so
    far. The best dev checkpoint is kept.

    Plateau: from `min_plateau_steps` on, the mean dev score of the last `plateau_window`
    evaluations is less than `min_gain` above the mean of the `plateau_window` before
    them. Window means, not single evaluations: with 256 dev prompts per task one lucky
    evaluation moves the score by 1-3 points, which ended tiny-l's constant phase while
    it was still rising (see the README). `min_plateau_steps` keeps the flat start, before
    the tasks are picked up (tiny-l: ~700 steps), from reading as a plateau."""

    batch_size: int = 16  # examples of each task per step
    warmup_steps: int = 100
    eval_every: int = 100
    plateau_window: int = 6  # evaluations per window
    min_gain: float = 0.01
    min_plateau_steps: int = 3000
    max_stable_steps: int = 12000  # a safety cap
    decay_fraction: float = 0.2
    min_decay_steps: int = 200
    weight_decay: float = 0.01
    # Matrix multiplies of training steps and dev scoring (autocast; weights, gradients and
    # optimizer state stay float32). "auto": bfloat16 where the CPU has it natively (a step
    # is 1.6-1.8x faster), else float32; resolved before it is hashed into the cache key.
    matmul_dtype: str = "auto"
    max_new_tokens: int = 24  # for the final greedy evaluation
    # Every this many steps (at a dev evaluation) the training state is saved, so a killed
    # build resumes there. Saving reads the state and changes nothing in it.
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        if self.checkpoint_every % self.eval_every:
            raise ValueError(f"checkpoint_every = {self.checkpoint_every} is not a multiple of "
                             f"eval_every = {self.eval_every} (states are saved at evaluations)")

    def resolved(self) -> TrainSettings:
        if self.matmul_dtype != "auto":
            return self
        return replace(self, matmul_dtype="bfloat16" if native_bfloat16() else "float32")


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (x86 AVX512-BF16 or AMX).
    Elsewhere it is emulated, so training uses float32 there."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags(cpuinfo)))


@dataclass(frozen=True)
class Profile:
    data: DataSettings
    tokenizer: TokenizerSettings
    train: TrainSettings
    sizes: dict[str, SizeConfig] = field(default_factory=dict)

    def settings_for(self, sizes: tuple[str, ...]) -> dict:
        """The JSON-able settings of a build of `sizes` (hashed into the cache key)."""
        return {
            "data": asdict(self.data),
            "tokenizer": asdict(self.tokenizer),
            "train": asdict(self.train.resolved()),
            "sizes": {size: asdict(self.sizes[size]) for size in sizes},
        }


# A ladder spanning 11.8x in parameters (0.56M / 1.97M / 6.56M). In tiny-m and tiny-l
# every Linear input width is a multiple of 256, so llama.cpp's k-quants (256-element
# blocks) apply to every tensor. tiny-l trains on one core while tiny-m and then tiny-s
# train on the other (`build._train_in_parallel`); tiny-l sets the build's time.
FULL_SIZES = {
    "tiny-s": SizeConfig(hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=32),
    "tiny-m": SizeConfig(hidden_size=256, intermediate_size=768, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=64),
    "tiny-l": SizeConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=64),
}

QUICK_SIZES = {
    "tiny-s": SizeConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=32,
                         learning_rate=3e-3),
    "tiny-m": SizeConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=32,
                         learning_rate=3e-3),
    "tiny-l": SizeConfig(hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=32,
                         learning_rate=3e-3),
}

PROFILES = {
    "full": Profile(
        data=DataSettings(train_per_task=64000, dev_per_task=256, eval_per_task=1000),
        tokenizer=TokenizerSettings(vocab_size=1024),
        train=TrainSettings(),
        sizes=FULL_SIZES,
    ),
    # For tests and smoke runs (about a minute): smaller shapes, little data, few steps.
    "quick": Profile(
        data=DataSettings(train_per_task=1200, dev_per_task=32, eval_per_task=64),
        tokenizer=TokenizerSettings(vocab_size=1024),
        train=TrainSettings(batch_size=8, warmup_steps=20, eval_every=40, plateau_window=2,
                            min_plateau_steps=0, max_stable_steps=120, min_decay_steps=40,
                            checkpoint_every=40),
        sizes=QUICK_SIZES,
    ),
}
