"""A model's architecture (its config.json fields) without building, downloading or loading it.

For the dry runs (`quantize --dry-run`, `evaluate sweep --dry-run`), first found of:
- `model.path`: the folder's config.json;
- a miniature: the registered architecture shrunk by `models.miniature.shrink`;
- the tiny family: a built size's config.json, else its declared shape (`models.tiny.settings`);
- `model.hub_id`: config.json in the local Hugging Face cache (never a download), else the
  registry's `model.architecture` (the released checkpoint's numbers, in the model's YAML).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from configs.schema import ModelConfig
from models import tiny
from models.miniature import shrink
from models.tiny.settings import PROFILES


def known_architecture(model: ModelConfig) -> tuple[Optional[dict[str, Any]], str]:
    """(config.json fields, where they come from), or (None, why not) when nothing is known."""
    if model.path:
        config = Path(model.path).expanduser() / "config.json"
        if config.is_file():
            return json.loads(config.read_text()), str(config)
        return None, f"{config} does not exist"
    if model.miniature and model.architecture:
        return shrink(dict(model.architecture), _tiny_vocab(model.tiny_profile)), "the registry, shrunk (miniature)"
    if model.tiny_size:
        return _tiny_architecture(model.tiny_size, model.tiny_profile)
    if model.hub_id:
        cached = _cached_config(model.hub_id, model.revision)
        if cached is not None:
            return json.loads(cached.read_text()), f"cached {cached}"
    if model.architecture:
        return dict(model.architecture), "the registry (model.architecture)"
    return None, f"model {model.name!r} has no config.json here and no model.architecture in the registry"


def _cached_config(hub_id: str, revision: str) -> Optional[Path]:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json", revision=revision)
    return Path(found) if isinstance(found, str) else None


def _tiny_build(profile: str):
    return tiny.find_build(tiny.cache_root(), profile, tiny.SIZES, 0)


def _tiny_vocab(profile: str) -> int:
    family = _tiny_build(profile)
    if family is not None:
        return json.loads((family.model_path(family.sizes[0]) / "config.json").read_text())["vocab_size"]
    return PROFILES[profile].tokenizer.vocab_size


def _tiny_architecture(size: str, profile: str) -> tuple[dict[str, Any], str]:
    family = _tiny_build(profile)
    if family is not None and size in family.sizes:
        config = family.model_path(size) / "config.json"
        return json.loads(config.read_text()), str(config)
    shape = PROFILES[profile].sizes[size]
    fields = {"model_type": "qwen3", "hidden_size": shape.hidden_size, "intermediate_size": shape.intermediate_size,
              "num_hidden_layers": shape.num_hidden_layers, "num_attention_heads": shape.num_attention_heads,
              "num_key_value_heads": shape.num_key_value_heads, "head_dim": shape.head_dim,
              "vocab_size": PROFILES[profile].tokenizer.vocab_size, "tie_word_embeddings": True,
              "max_position_embeddings": 512}
    return fields, f"the tiny family's settings ({profile}; not built yet)"
