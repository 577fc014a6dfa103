"""The lab's self-trained tiny model family: Qwen3-architecture causal LMs trained from
scratch on CPU on seeded synthetic versions of the lab's boxed-answer tasks, so every
pipeline has models whose accuracy and format compliance mean something, offline.

    from models.tiny import ensure_built
    family = ensure_built()                   # the release in models/tiny/release (no training)
    family.model_path("tiny-s")               # an ordinary HF checkpoint folder
    family.data_path("openmath")              # held-out docs in the Hub dataset's schema
    family.calibration_path                   # {"text": ...} per line

CLI: `python -m models.tiny build [--sizes tiny-s,tiny-m] [--profile quick] [--seed 0]
[--force]` (trains; resumes a killed build), `python -m models.tiny path [--profile quick]
[--seed 0]`, `python -m models.tiny verify [folder]` (the release by default) and
`python -m models.tiny release <build folder>`.
"""

from models.tiny.build import CACHE_ENV, TinyFamily, cache_root, ensure_built, find_build
from models.tiny.generator import TASKS
from models.tiny.settings import PROFILES, SIZES

__all__ = ["CACHE_ENV", "PROFILES", "SIZES", "TASKS", "TinyFamily", "cache_root",
           "ensure_built", "find_build"]
