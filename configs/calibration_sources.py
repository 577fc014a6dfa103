"""Which calibration sources exist and what they point at, checked without reading data.

A source is a named set (one YAML in hydra_conf/calibration/, which describes where its
records come from) or `file:/path/to/data.{txt,jsonl,json,parquet,csv}`. `resolve` checks
a `CalibrationConfig`'s source and fills in a named set's description; `calibration/`
reads the records.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf

from configs.errors import ConfigError

FILE_PREFIX = "file:"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "hydra_conf" / "calibration"
# The fields of CalibrationConfig that say where records come from (a named set's YAML).
DESCRIPTION_FIELDS = ("dataset", "subset", "split", "data_files", "text_field", "response_field", "pack")
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}


def known_sources() -> list[str]:
    """The named sets (one YAML each in hydra_conf/calibration/)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve(cfg):
    """`cfg` (a CalibrationConfig) with its source checked and, for a named Hub set given
    only by name (`calibration.source=pileval` without `calibration=pileval`), the set's
    description taken from its YAML."""
    source = cfg.source
    if source.startswith(FILE_PREFIX):
        local_file(Path(source[len(FILE_PREFIX):]).expanduser(), f"calibration.source={source}")
        return cfg
    if source not in known_sources():
        raise ConfigError(
            f"calibration.source={source!r} is not valid; choices: {', '.join(known_sources())}, "
            f"or file:/path/to/data.(txt|jsonl)"
        )
    if cfg.dataset is None and source != "tiny":
        described = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{source}.yaml"))
        cfg = dataclasses.replace(cfg, **{k: described[k] for k in DESCRIPTION_FIELDS if k in described})
    if cfg.data_files and looks_local(cfg.data_files):
        local_file(Path(cfg.data_files).expanduser(), f"calibration.data_files={cfg.data_files}")
    return cfg


def looks_local(data_files: str) -> bool:
    return data_files.startswith(("/", "~", "./", "../")) or Path(data_files).expanduser().exists()


def local_file(path: Path, setting: str) -> Path:
    """`path`, resolved, if it is a file with a readable extension; else a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{setting}: no such file ({path})")
    if suffix(path) not in LOCAL_BUILDERS:
        raise ConfigError(f"{setting}: {path} has an unsupported extension; choices: {', '.join(LOCAL_BUILDERS)}")
    return path.resolve()


def suffix(path: Path) -> str:
    """The extension that says the format, ignoring a compression suffix (.jsonl.gz -> .jsonl)."""
    suffixes = [s for s in path.suffixes if s not in (".gz", ".zst", ".bz2", ".xz")]
    return suffixes[-1] if suffixes else ""
