"""Load, sample, tokenize and cache calibration text; one function, `load_calibration`.

Where records come from is described by `CalibrationConfig` (a named set's YAML fills in
`dataset`, `subset`, `split`, `data_files`, `text_field`, `response_field`, `pack`):
  - a Hub set loads through `datasets.load_dataset(dataset, subset, split=..., data_files=...)`;
    pointing `data_files` at a local file in the same schema reads that file instead
    (offline, through the same record -> text -> tokens code);
  - `tiny` reads the calibration file the tiny family's generator wrote;
  - `file:/path` reads a local file: .txt is one sample per line, .jsonl/.json/.parquet
    have a `text_field` column (or a prompt + `response_field`, or chat messages).
A record becomes text in one of three shapes: plain text, prompt + response (rendered as a
user/assistant turn when `apply_chat_template`, else joined by a newline), or a list of
chat messages (rendered with the model's chat template when `apply_chat_template`, else
their contents joined). Records are shuffled with `seed`; each sample is one record cut
to `seq_len` tokens, or, with `pack`, a `seq_len` window of the records' concatenation
(the GPTQ-paper way for wikitext2/c4, whose records are often a line long).

The samples are cached under `<cache root>/calibration/` by a fingerprint of (source
description, settings, tokenizer); the fingerprint goes into the artifact's manifest.

A local file is checked before it is read: text must be UTF-8 (a byte-order mark is
dropped); a file in another encoding is refused with the encoding its bytes look like and
the `iconv` command that converts it, rather than decoded with replacement characters,
which would quietly change the calibration text and so the quantized weights. A .jsonl
line that is not a JSON object, a .json that is not JSON, a .parquet that does not read, a
file with no records at all: each is one line naming the file and where.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from common.files import bad_file, json_problem, parquet_problem, read_jsonl, read_text, text_problem
from common.storage import cache_root, file_sha256, write_json_atomic
from configs.calibration_sources import FILE_PREFIX, LOCAL_BUILDERS, local_file, looks_local, resolve, suffix
from configs.errors import BadFile, ConfigError
from configs.schema import CalibrationConfig
from models import tiny

CACHE_VERSION = 1  # bump when sampling or tokenization changes


@dataclass
class CalibrationSet:
    """Tokenized calibration samples, ready for a quantizer."""

    source: str
    samples: list[list[int]]  # token ids, each at most seq_len long
    fingerprint: str
    settings: dict  # the resolved CalibrationConfig
    cache_file: Optional[str] = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_tokens(self) -> int:
        return sum(len(sample) for sample in self.samples)

    def to_dataset(self):
        """A `datasets.Dataset` with `input_ids` and `attention_mask` (what `oneshot` takes)."""
        from datasets import Dataset

        return Dataset.from_dict(
            {"input_ids": self.samples, "attention_mask": [[1] * len(s) for s in self.samples]}
        )

    def describe(self) -> dict:
        """What the manifest records about the calibration data."""
        lengths = [len(s) for s in self.samples]
        return {
            "fingerprint": self.fingerprint,
            **self.settings,
            "num_tokens": self.num_tokens,
            "min_len": min(lengths),
            "max_len": max(lengths),
            "cache_file": self.cache_file,
        }


def load_calibration(cfg: CalibrationConfig, tokenizer, model=None) -> CalibrationSet:
    """The calibration samples `cfg` describes, tokenized with `tokenizer`.

    `model` (a ModelConfig, optional) picks the tiny family's build profile for
    `source=tiny`. Raises ConfigError (one line) for an unknown source, a missing file,
    a dataset that is not available offline, or too few samples.
    """
    cfg = resolve(cfg)
    path = _local_path(cfg, model)
    if cfg.apply_chat_template and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "calibration.apply_chat_template=true but this model's tokenizer has no chat template; "
            "set calibration.apply_chat_template=false"
        )
    settings = dataclasses.asdict(cfg)
    key = _fingerprint(settings, path, tokenizer)
    cache_file = cache_root() / "calibration" / f"{key[:24]}.json"
    samples = _read_cache(cache_file, key)
    if samples is None:
        records = _records(cfg, path)
        texts = (_to_text(record, cfg, tokenizer) for record in records)
        samples = _pack(texts, cfg, tokenizer) if cfg.pack else _one_per_record(texts, cfg, tokenizer)
        if len(samples) < cfg.num_samples:
            what = f"{sum(map(len, samples))} tokens (pack: {cfg.num_samples} x {cfg.seq_len} needed)" if cfg.pack else f"{len(samples)} non-empty samples"
            raise ConfigError(
                f"calibration={cfg.source} has only {what}; calibration.num_samples={cfg.num_samples} "
                f"requested: lower num_samples or use a larger set"
            )
        _write_cache(cache_file, key, samples)
    return CalibrationSet(cfg.source, samples, key, settings, str(cache_file))


# -- where the records are ---------------------------------------------------------------
def _local_path(cfg: CalibrationConfig, model) -> Optional[Path]:
    """The local file the records come from, or None for a Hub dataset."""
    if cfg.source.startswith(FILE_PREFIX):
        return local_file(Path(cfg.source[len(FILE_PREFIX):]).expanduser(), f"calibration.source={cfg.source}")
    if cfg.source == "tiny" and cfg.data_files is None:
        profile = getattr(model, "tiny_profile", None) or "full"
        return local_file(Path(tiny.ensure_built(profile=profile).calibration_path), "the tiny family's calibration file")
    if cfg.data_files and looks_local(cfg.data_files):
        return local_file(Path(cfg.data_files).expanduser(), f"calibration.data_files={cfg.data_files}")
    if cfg.dataset is None:
        raise ConfigError(f"calibration={cfg.source} names no dataset: set calibration.dataset or calibration.data_files")
    return None


def _records(cfg: CalibrationConfig, path: Optional[Path]) -> Iterator:
    """The records in seeded random order: strings (.txt lines) or dicts."""
    if path is not None and suffix(path) == ".txt":
        lines = [line for line in read_text(path, FIX_FILE).splitlines() if line.strip()]
        if not lines:
            raise bad_file(path, "is empty (no line holds text)", FIX_FILE)
        random.Random(cfg.seed).shuffle(lines)
        yield from lines
        return
    if path is not None:
        _check_file(path)
    dataset = _load_dataset(cfg, path)
    if cfg.text_field not in dataset.column_names:
        raise ConfigError(
            f"calibration={cfg.source}: the data has no field {cfg.text_field!r} (calibration.text_field); "
            f"fields: {', '.join(dataset.column_names)}"
        )
    yield from dataset.shuffle(seed=cfg.seed)


FIX_FILE = "fix the calibration file"


def _check_file(path: Path) -> None:
    """A local data file checked before `datasets` reads it (its errors name no file)."""
    kind = suffix(path)
    check = {".jsonl": _jsonl_problem, ".json": _json_or_lines_problem, ".csv": text_problem,
             ".parquet": parquet_problem}.get(kind)
    problem = check(path) if check else None
    if problem is not None:
        raise bad_file(path, problem, FIX_FILE)


def _json_or_lines_problem(path: Path) -> Optional[str]:
    """`datasets` reads a .json file holding one document or JSON lines (c4's shards)."""
    problem = json_problem(path, kind=(list, dict))
    return None if problem is None or (problem != "is empty" and _jsonl_problem(path) is None) else problem


def _jsonl_problem(path: Path) -> Optional[str]:
    """jsonl_problem, and no line at all is "is empty" (`datasets` fails on it naming nothing)."""
    try:
        return None if read_jsonl(path) else "is empty (no JSON lines)"
    except BadFile as error:
        return error.problem


def _load_dataset(cfg: CalibrationConfig, path: Optional[Path]):
    import datasets

    try:
        if path is not None:  # a local file in the set's schema: same code path, no Hub
            return datasets.load_dataset(LOCAL_BUILDERS[suffix(path)], data_files=str(path), split="train")
        return datasets.load_dataset(cfg.dataset, cfg.subset, split=cfg.split, data_files=cfg.data_files)
    except Exception as error:  # noqa: BLE001 - datasets raises many types; one line either way
        if not isinstance(error, (ConnectionError, FileNotFoundError, OSError, ValueError)) and path is None:
            raise
        if path is not None:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise BadFile(path, f"cannot be read as {LOCAL_BUILDERS[suffix(path)]} ({type(error).__name__}: "
                          f"{reason[:200]})", FIX_FILE) from None
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(
            f"calibration={cfg.source}: cannot load dataset {cfg.dataset!r} ({reason[:200]}); "
            f"pre-download it where the Hub is reachable (datasets cache, HF_HOME) or point "
            f"calibration.data_files=/local/file.jsonl at a file in the same schema"
        ) from None


# -- records -> text -> tokens ---------------------------------------------------------
def _to_text(record, cfg: CalibrationConfig, tokenizer) -> str:
    if isinstance(record, str):
        value, response = record, None
    else:
        value = record[cfg.text_field]
        response = record.get(cfg.response_field) if cfg.response_field else None
    if isinstance(value, list):  # chat messages
        messages = [{"role": m["role"], "content": m["content"]} for m in value]
    else:
        messages = [{"role": "user", "content": str(value or "")}]
        if response:
            messages.append({"role": "assistant", "content": str(response)})
    if not any(m["content"].strip() for m in messages):
        return ""
    if cfg.apply_chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "\n".join(m["content"] for m in messages)


def _encode(text: str, cfg: CalibrationConfig, tokenizer) -> list[int]:
    # A rendered chat template already holds the special tokens it needs.
    return tokenizer(text, add_special_tokens=not cfg.apply_chat_template)["input_ids"]


def _one_per_record(texts: Iterable[str], cfg: CalibrationConfig, tokenizer) -> list[list[int]]:
    samples = []
    for text in texts:
        if text.strip():
            samples.append(_encode(text, cfg, tokenizer)[: cfg.seq_len])
            if len(samples) == cfg.num_samples:
                break
    return samples


def _pack(texts: Iterable[str], cfg: CalibrationConfig, tokenizer) -> list[list[int]]:
    needed = cfg.num_samples * cfg.seq_len
    stream: list[int] = []
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for text in texts:
        if text.strip():
            stream.extend(_encode(text, cfg, tokenizer) + separator)
            if len(stream) >= needed:
                break
    return [stream[i : i + cfg.seq_len] for i in range(0, len(stream) - cfg.seq_len + 1, cfg.seq_len)][: cfg.num_samples]


# -- fingerprint and cache ---------------------------------------------------------------
def _fingerprint(settings: dict, path: Optional[Path], tokenizer) -> str:
    payload = {
        "version": CACHE_VERSION,
        "settings": settings,
        "file_sha256": file_sha256(path) if path else None,
        "tokenizer": tokenizer_fingerprint(tokenizer),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the token ids: the tokenizer's model and rules, its chat template and
    special tokens (not the folder it was loaded from)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    rules = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = json.dumps([tokenizer.chat_template, tokenizer.bos_token, tokenizer.eos_token], default=str)
    return hashlib.sha256((rules + extra).encode()).hexdigest()



def _read_cache(cache_file: Path, key: str) -> Optional[list[list[int]]]:
    """The cached samples, or None (none yet, another key's, or a damaged file: remade)."""
    try:
        cached = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return None
    samples = cached.get("samples") if isinstance(cached, dict) and cached.get("fingerprint") == key else None
    valid = isinstance(samples, list) and all(isinstance(s, list) and all(isinstance(t, int) for t in s) for s in samples)
    return samples if valid else None


def _write_cache(cache_file: Path, key: str, samples: list[list[int]]) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cache_file, {"fingerprint": key, "samples": samples})
