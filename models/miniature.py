"""Miniatures: shape-faithful, randomly initialised stand-ins of the registered models.

A registered model's YAML holds its `architecture` (the config.json fields of the released
checkpoint). Its miniature keeps everything that decides which code runs (model_type, tied
or untied embeddings, the query heads per KV head, rope settings including Llama 3's
`rope_scaling`, norm epsilon, activation, biases) and shrinks the widths and the depth:

- KV heads: min(real, 2), query heads: that times the real ratio;
- head_dim: the smallest of 32/64/128 for which the query width and the hidden size are
  multiples of 128 (so group sizes 32, 64 and 128 divide every linear layer's input),
  keeping the real ratio of query width to hidden size (1 for Qwen2.5 and Llama 3.x, whose
  head_dim is hidden/heads; 2 for Qwen3-0.6B);
- intermediate_size: the real ratio to the hidden size, rounded up to a multiple of 128;
- 2 layers; the vocabulary and tokenizer (ChatML template) of the lab's tiny family.

Weights are random (torch's default init for the model class) and deterministic for a
seed, saved in the registry's dtype as an ordinary checkpoint folder. Built on demand into
the lab's cache, next to a copy of the tiny family's data (so `eval=tiny` and
`calibration=tiny` work on a miniature's artifacts); nothing is downloaded:

    <cache>/miniatures/<tiny build>/data/                  the tiny family's data
    <cache>/miniatures/<tiny build>/<name>-seed<seed>-<hash>/   the checkpoint

`model=mini-qwen3` (or any registered model with `model.miniature=true`) selects one.
config.json is written as the Hub's checkpoints are (`rope_theta`/`rope_scaling`, not
transformers 5's `rope_parameters`), so that every environment's transformers (4.x in
`.venv-legacy`) reads the same rope settings.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from common.storage import cache_root, exclusive_lock, staging_folder
from models import tiny

log = logging.getLogger(__name__)

MINIATURE_VERSION = 1  # bump when the shrinking rule or the folder layout changes
LAYERS = 2
MAX_KV_HEADS = 2
WIDTH_MULTIPLE = 128  # group sizes 32/64/128 divide every linear input
HEAD_DIMS = (32, 64, 128)
CHECKPOINT_DTYPE = "bfloat16"  # what the registered checkpoints are on disk (model.dtype is what loads)
# Fields copied as they are: they choose code paths, not sizes.
KEPT = ("model_type", "architectures", "tie_word_embeddings", "rope_theta", "rope_scaling", "rms_norm_eps",
        "hidden_act", "attention_bias", "mlp_bias", "use_sliding_window", "pretraining_tp")


def shrink(architecture: dict[str, Any], vocab_size: int, layers: int = LAYERS) -> dict[str, Any]:
    """The miniature's config.json fields for a registered `architecture`."""
    hidden, heads = architecture["hidden_size"], architecture["num_attention_heads"]
    kv_heads = architecture.get("num_key_value_heads") or heads
    real_head_dim = architecture.get("head_dim") or hidden // heads
    query_per_hidden = heads * real_head_dim / hidden
    mini_kv = min(kv_heads, MAX_KV_HEADS)
    mini_heads = mini_kv * (heads // kv_heads)
    head_dim, mini_hidden = _widths(mini_heads, query_per_hidden)
    ratio = architecture["intermediate_size"] / hidden
    config = {key: copy.deepcopy(architecture[key]) for key in KEPT if key in architecture}
    config.update(
        hidden_size=mini_hidden,
        intermediate_size=_round_up(mini_hidden * ratio, WIDTH_MULTIPLE),
        num_hidden_layers=layers,
        num_attention_heads=mini_heads,
        num_key_value_heads=mini_kv,
        head_dim=head_dim,
        vocab_size=vocab_size,
        max_position_embeddings=architecture.get("max_position_embeddings", 4096),
    )
    if "max_window_layers" in architecture:
        config["max_window_layers"] = layers
    return config


def _widths(heads: int, query_per_hidden: float) -> tuple[int, int]:
    """(head_dim, hidden_size): the smallest head_dim giving multiples of 128 for both."""
    for head_dim in HEAD_DIMS:
        hidden = heads * head_dim / query_per_hidden
        if (heads * head_dim) % WIDTH_MULTIPLE == 0 and hidden.is_integer() and hidden % WIDTH_MULTIPLE == 0:
            return head_dim, int(hidden)
    head_dim = HEAD_DIMS[-1]  # no exact fit: keep the ratio as near as multiples of 128 allow
    return head_dim, max(WIDTH_MULTIPLE, _round_up(heads * head_dim / query_per_hidden, WIDTH_MULTIPLE))


def _round_up(value: float, multiple: int) -> int:
    return int(-(-value // multiple) * multiple)


def ensure_miniature(name: str, architecture: dict[str, Any], *, dtype: str = CHECKPOINT_DTYPE, seed: int = 0,
                     tiny_profile: str = "full", cache_dir: str | os.PathLike | None = None) -> Path:
    """The miniature's checkpoint folder, built now if it is not in the cache."""
    family = tiny.ensure_built(profile=tiny_profile)
    tokenizer_dir = family.model_path(family.sizes[0])
    vocab_size = json.loads((tokenizer_dir / "config.json").read_text())["vocab_size"]
    config = shrink(architecture, vocab_size)
    key = {"version": MINIATURE_VERSION, "config": config, "dtype": dtype, "seed": seed}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    root = (Path(cache_dir).expanduser() if cache_dir else cache_root()) / "miniatures" / family.root.name
    folder = root / f"{name}-seed{seed}-{digest}"
    _ensure_data(root, family.root / "data")
    if not _is_built(folder):
        # A staging folder left by a killed build is removed by the next one (staging_folder).
        with exclusive_lock(root / f".{folder.name}.lock"):
            if not _is_built(folder):  # else another process built it while this one waited
                if folder.exists():  # not built by the lab (it renames complete folders only)
                    log.warning("%s is incomplete (no config.json or weights); building it again", folder)
                    shutil.rmtree(folder)
                with staging_folder(folder) as staging:
                    _build(staging, config, dtype, seed, tokenizer_dir)
                    os.rename(staging, folder)
                log.info("miniature %s built: %s", name, folder)
    return folder


def _is_built(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _ensure_data(root: Path, source: Path) -> None:
    """A copy of the tiny family's data next to the miniatures (eval=tiny reads it there)."""
    final = root / "data"
    if final.is_dir():
        return
    with exclusive_lock(root / ".data.lock"):
        if not final.exists():
            with staging_folder(final) as staging:
                shutil.copytree(source, staging, dirs_exist_ok=True)
                os.rename(staging, final)


def _build(out: Path, fields: dict[str, Any], dtype: str, seed: int, tokenizer_dir: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    fields = copy.deepcopy(fields)  # transformers adds rope_theta into the rope_scaling it is given
    config = AutoConfig.for_model(fields.pop("model_type"), **copy.deepcopy(fields), bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(getattr(torch, dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _write_hub_style_rope(out / "config.json", fields)


def _write_hub_style_rope(path: Path, fields: dict[str, Any]) -> None:
    """config.json's rope settings as the Hub's checkpoints write them (`rope_theta` and
    `rope_scaling`), which transformers 4 and 5 both read; 5 writes `rope_parameters`."""
    saved = json.loads(path.read_text())
    saved.pop("rope_parameters", None)
    saved["rope_theta"] = fields.get("rope_theta", 10000.0)
    saved["rope_scaling"] = fields.get("rope_scaling")
    path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
