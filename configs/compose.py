"""Compose a job config from `hydra_conf/` and command-line overrides, failing early.

Entry points call `compose(config_name, overrides)`: it checks group choices against the
YAML files that exist, composes with Hydra's compose API, converts to the typed schema
objects and runs their `validate()`. Every failure becomes one `ConfigError` line that
names the setting, the bad value and the choices; nothing heavy has run yet.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs.errors import ConfigError
from configs.eval_schema import EvalRunConfig
from configs.report_schema import ReportConfig
from configs.schema import QuantizeJobConfig
from configs.sweep_schema import EvalSweepConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "hydra_conf"
SCHEMAS = {
    "quantize_schema": QuantizeJobConfig,
    "evaluate_run_schema": EvalRunConfig,
    "evaluate_sweep_schema": EvalSweepConfig,
    "report_schema": ReportConfig,
}


_HYDRA_STATE = threading.Lock()


@functools.cache
def register_schemas() -> None:
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=name, node=schema)


def group_choices(group: str) -> list[str]:
    """The options of a config group: the YAML files in hydra_conf/<group>/."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def compose(config_name: str, overrides: list[str]):
    """The validated, typed config object for `config_name` with `overrides` applied."""
    overrides = [_expand_shorthand(o) for o in overrides]
    overrides = [item for o in overrides for item in o]
    _check_group_choices(overrides)
    cfg = _compose_with_method_keys(config_name, overrides)
    try:
        job = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:
        raise _as_config_error(error, config_name) from None
    job.validate()
    return job


def compose_dict(config_name: str, overrides: list[str]):
    """The composed DictConfig, before conversion (used by `--cfg` and by tests)."""
    register_schemas()
    _check_override_syntax(overrides)
    with _HYDRA_STATE:  # Hydra's global state: one compose at a time per process
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                return hydra_compose(config_name=config_name, overrides=overrides)
        except (HydraException, OmegaConfBaseException) as error:
            raise _as_config_error(error, config_name) from None
        finally:
            GlobalHydra.instance().clear()


def _compose_with_method_keys(config_name: str, overrides: list[str]):
    """compose_dict, taking `method.<key>=<value>` for any key: a method's settings are the
    fields of its Options class, which only the quantize stage knows (building the method
    rejects a key it does not have, naming the valid ones)."""
    while True:
        try:
            return compose_dict(config_name, overrides)
        except ConfigError as error:
            key = getattr(error, "full_key", "")
            new_entries = [o for o in overrides if key.startswith("method.") and o.split("=", 1)[0] == key]
            if not new_entries:
                raise
            overrides = [f"+{o}" if o in new_entries else o for o in overrides]


def _check_override_syntax(overrides: list[str]) -> None:
    """Hydra's parser would report these as a lexer error; say what a setting looks like."""
    for override in overrides:
        if override.startswith("-"):
            raise ConfigError(f"unknown option {override!r}: settings are key=value (e.g. quant.bits=4); see --help")
        if "=" not in override and not override.startswith("~"):
            raise ConfigError(f"{override!r} is not a setting: write key=value (e.g. quant.bits=4)")


def _expand_shorthand(override: str) -> list[str]:
    """`calibration=file:/x` means `calibration.source=file:/x`; see `_expand_model_path`."""
    key, sep, value = override.partition("=")
    if key == "calibration" and value.startswith("file:"):
        return [f"calibration.source={value}"]
    return _expand_model_path(override)


def _expand_model_path(override: str) -> list[str]:
    """`model=/some/folder` is shorthand for `model=local model.path=/some/folder`."""
    key, sep, value = override.partition("=")
    if key != "model" or not sep or value in group_choices("model"):
        return [override]
    if os.sep in value or value.startswith(".") or Path(value).is_dir():
        folder = Path(value).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(f"model={value!r}: no such folder ({folder})")
        return ["model=local", f"model.path={folder}", f"model.name={folder.name}"]
    return [override]


def _check_group_choices(overrides: list[str]) -> None:
    for override in overrides:
        key, sep, value = override.lstrip("+").partition("=")
        if not sep or "." in key or not (CONFIG_DIR / key).is_dir():
            continue
        choices = group_choices(key)
        if value not in choices:
            also = " (or a local checkpoint folder)" if key == "model" else ""
            raise ConfigError(f"{key}={value!r} is not valid; choices: {', '.join(choices)}{also}")


def _as_config_error(error: Exception, config_name: str) -> ConfigError:
    """One line from Hydra's or OmegaConf's multi-line message (the root cause's, if any)."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    full_key = getattr(cause, "full_key", None)
    message = getattr(cause, "msg", None) or str(cause)
    message = message.strip().splitlines()[0] if message.strip() else type(cause).__name__
    if full_key and "missing mandatory value" in message:
        return ConfigError(f"missing required setting {full_key!r}: add {full_key}=<value>")
    if full_key and "not in" in message:
        parent = full_key.rpartition(".")[0]
        error = ConfigError(f"unknown setting {full_key!r}; {_valid_keys(SCHEMAS[f'{config_name}_schema'], parent)}")
        error.full_key = full_key
        return error
    if full_key:
        return ConfigError(f"{full_key}: {message}")
    return ConfigError(message)


def _valid_keys(schema: type, parent: str) -> str:
    node = OmegaConf.structured(schema)
    if parent:
        node = OmegaConf.select(node, parent)
    if not OmegaConf.is_dict(node):
        return "check the spelling"
    if OmegaConf.get_type(node) is dict:  # a free-form mapping: new keys need Hydra's '+'
        return f"{parent} is a mapping: add a new entry with +{parent}.<key>=<value>"
    return f"valid keys of {parent or 'the config'}: {', '.join(node.keys())}"
