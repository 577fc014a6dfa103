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
from typing import Optional

import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs.errors import BadFile, ConfigError
from configs.eval_schema import EvalRunConfig
from configs.report_schema import ReportConfig
from configs.text import decode_text
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
    return _to_job(*_compose_expanded(config_name, overrides), config_name)


def describe_config(config_name: str, overrides: list[str], check=None) -> tuple[str, Optional[ConfigError]]:
    """What `--cfg` prints: the composed config as YAML, and the error that validating it
    raises (the schema's `validate()`, then `check(job)` if given), or None when it is valid.
    A config that does not even compose (an unknown key or group choice) raises instead."""
    cfg, expanded = _compose_expanded(config_name, overrides)
    text = OmegaConf.to_yaml(cfg)
    try:
        job = _to_job(cfg, expanded, config_name)
        if check is not None:
            check(job)
    except ConfigError as error:
        return text, error
    return text, None


def _compose_expanded(config_name: str, overrides: list[str]):
    overrides = [item for o in overrides for item in _expand_shorthand(o)]
    _check_group_choices(overrides)
    _check_yamls(config_name, overrides)
    return _compose_with_method_keys(config_name, overrides), overrides


def _check_yamls(config_name: str, overrides: list[str]) -> None:
    """The YAML files this composition reads (the primary config and the chosen option of
    each of its groups), each UTF-8 YAML holding settings. An emptied option file would
    otherwise compose silently into the schema's defaults (method=rtn running method none)."""
    for path in _chosen_yamls(config_name, overrides).values():
        _read_yaml(path)


def _chosen_yamls(config_name: str, overrides: list[str]) -> dict[str, Path]:
    """group -> the option file this composition reads ("" -> the primary config)."""
    primary = CONFIG_DIR / f"{config_name}.yaml"
    if not primary.is_file():
        return {}  # Hydra says it is missing
    chosen = {key.lstrip("+"): value for key, _, value in (o.partition("=") for o in overrides)}
    paths = {"": primary}
    for entry in _read_yaml(primary).get("defaults") or []:
        if isinstance(entry, dict):
            for group, default in entry.items():
                path = CONFIG_DIR / group / f"{chosen.get(group, default)}.yaml"
                if path.is_file():
                    paths[group] = path
    return paths


def _read_yaml(path: Path) -> dict:
    text, problem = decode_text(path.read_bytes())
    if problem:
        raise BadFile(path, problem, "" if "; convert it" in problem else "save it as UTF-8")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise BadFile(path, f"is not valid YAML ({problem}{at})", "fix it, or restore it from git") from None
    if not isinstance(value, dict) or not value:
        what = "no settings (it is empty or only comments)" if not value else f"a YAML {type(value).__name__}, not settings"
        raise BadFile(path, f"holds {what}", "fix it, or restore it from git")
    return value


def _to_job(cfg, overrides: list[str], config_name: str):
    try:
        job = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:
        raise _as_config_error(error, config_name) from None
    try:
        job.validate()
    except ConfigError as error:
        raise _naming_the_yaml(error, config_name, overrides) from None
    return job


def _naming_the_yaml(error: ConfigError, config_name: str, overrides: list[str]) -> ConfigError:
    """"sweep.methods is empty" as the sweep YAML that sets none (a truncated file can end
    before them), unless the command line set the setting: the file is what to fix."""
    setting = str(error).split(" ", 1)[0]
    group, _, key = setting.partition(".")
    if isinstance(error, BadFile) or not key or not str(error).startswith(f"{setting} is empty"):
        return error
    path = _chosen_yamls(config_name, overrides).get(group)
    if path is None or any(o.lstrip("+").partition("=")[0] == setting for o in overrides):
        return error
    return BadFile(path, f"sets no {key}, so {setting} is empty", f"add `{key}:` to it, or restore it from git")


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
        except (yaml.YAMLError, UnicodeDecodeError) as error:  # a config YAML that is not UTF-8 YAML
            raise _bad_yaml(error) from None
        finally:
            GlobalHydra.instance().clear()


def _bad_yaml(error: Exception) -> ConfigError:
    """The YAML file under hydra_conf/ that Hydra could not read, named, with what is wrong."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    candidates = [Path(mark.name)] if mark is not None and Path(mark.name).is_file() else sorted(CONFIG_DIR.rglob("*.yaml"))
    for path in candidates:
        try:
            _read_yaml(path)
        except BadFile as bad:
            return bad
    return ConfigError(f"a config YAML under {CONFIG_DIR} cannot be read: {str(error).splitlines()[0]}")


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
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    message = lines[0] if lines else type(cause).__name__
    if message.endswith(":") and len(lines) > 1:  # "In 'sweep/x': ValidationError raised while composing config:"
        message = _in_file(message.replace(" ValidationError raised while composing config:", "")) + " " + lines[1]
        key = next((line.split(":", 1)[1].strip() for line in lines[2:] if line.startswith("full_key:")), "")
        message += f" (setting {key})" if key else ""
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


def _in_file(message: str) -> str:
    """Hydra's "In 'sweep/x': ..." with the YAML file named, for a user who wrote it."""
    if message.startswith("In '") and "'" in message[4:]:
        name = message[4:].split("'", 1)[0]
        if (CONFIG_DIR / f"{name}.yaml").is_file():
            return message.replace(f"In '{name}'", f"In {CONFIG_DIR / name}.yaml", 1)
    return message


def _valid_keys(schema: type, parent: str) -> str:
    node = OmegaConf.structured(schema)
    if parent:
        node = OmegaConf.select(node, parent)
    if not OmegaConf.is_dict(node):
        return "check the spelling"
    if OmegaConf.get_type(node) is dict:  # a free-form mapping: new keys need Hydra's '+'
        return f"{parent} is a mapping: add a new entry with +{parent}.<key>=<value>"
    return f"valid keys of {parent or 'the config'}: {', '.join(node.keys())}"
