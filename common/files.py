"""Checks of the files the lab reads, made where they are read and before the expensive work.

Each `*_problem(path)` returns None when the file can be read as its format says, else a
short phrase saying what is wrong with it ("is empty", "is truncated: 1,000 bytes, its
header describes 2,048", "is not UTF-8 text: byte 0xe9 at offset 12 (line 1); it looks like
Latin-1 / Windows-1252"). Callers turn a problem into one `BadFile` line with the advice
that fits their stage (re-download the checkpoint, rerun `python -m quantize`, convert the
file to UTF-8). Only what says whether a file is whole is read (a safetensors header, a zip
directory, a Parquet footer, a JSON text), never tensor data, so a 14 GB checkpoint is
checked in milliseconds. What only loading can tell (a tensor's bytes replaced by others of
the same length) is caught where the model loads (`models.loading`).

Text is UTF-8: the lab rejects other encodings naming the one the bytes look like, rather
than decoding with replacement characters (which would silently change calibration text,
prompts and answers). A UTF-8 byte-order mark is accepted where the lab reads the text
itself, and refused in JSON files, whose readers (transformers, datasets) reject it.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
import zipfile
from pathlib import Path
from typing import IO, Optional

from configs.errors import BadFile
from configs.text import decode_text  # the ground floor's, so config YAMLs are read the same way

UTF8_BOM = b"\xef\xbb\xbf"
# bytes per element of each safetensors dtype (sub-byte and exotic dtypes are not size-checked)
_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}
_MAX_HEADER = 100 * 1024 * 1024  # safetensors refuses larger headers too
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "tekken.json")


def bad_file(path: Path, problem: str, advice: str = "") -> BadFile:
    """A BadFile; `advice` left out where the problem already says what to do (convert it)."""
    return BadFile(path, problem, "" if "; convert it" in problem or "; remove it" in problem else advice)


def role(path: Path) -> str:
    """What a file of a checkpoint or artifact folder is, in words, for messages."""
    name = Path(path).name
    if name.endswith(WEIGHT_SUFFIXES) or name == "qmodel.pt":
        return "the weights file"
    if name == "manifest.json":
        return "the manifest"
    if name == "config.json":
        return "the model config"
    if name.startswith(("tokenizer", "vocab", "merges", "special_tokens_map", "added_tokens", "tekken")):
        return "the tokenizer file"
    if name.startswith("chat_template"):
        return "the chat template"
    if name == "generation_config.json":
        return "the generation config"
    if name.endswith(".safetensors.index.json"):
        return "the weights index"
    return "the file"


# -- text ----------------------------------------------------------------------------------
def open_bytes(path: Path) -> IO[bytes]:
    """A binary reader of `path`, decompressing .gz, .bz2 and .xz."""
    path = Path(path)
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix, open)
    return opener(path, "rb")


def read_bytes(path: Path) -> bytes:
    """The file's bytes (decompressed); a damaged compressed stream is a BadFile."""
    try:
        with open_bytes(path) as handle:
            return handle.read()
    except (EOFError, OSError, lzma.LZMAError, zipfile.BadZipFile) as error:
        if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise BadFile(path, f"cannot be read ({error.strerror or error})") from None
        raise BadFile(path, f"is not a complete {Path(path).suffix} archive ({_first_line(error)})",
                      "recompress or replace it") from None


def text_problem(path: Path) -> Optional[str]:
    data = read_bytes(path)
    if not data.strip():
        return "is empty"
    return decode_text(data)[1]


def read_text(path: Path, advice: str = "") -> str:
    """The file as text: UTF-8 (a byte-order mark removed), else a BadFile naming the encoding."""
    text, problem = decode_text(read_bytes(path))
    if problem:
        raise bad_file(path, problem, advice)
    return text


# -- JSON, JSON lines, YAML --------------------------------------------------------------
def json_problem(path: Path, kind: type = dict) -> Optional[str]:
    return _json_text_problem(read_bytes(path), kind)[1]


def read_json(path: Path, advice: str = "", kind: type = dict):
    """The parsed JSON (a `kind`, dict by default), or a BadFile saying what is wrong."""
    value, problem = _json_text_problem(read_bytes(path), kind)
    if problem:
        raise bad_file(path, f"{role(path)} {problem}" if role(path) != "the file" else problem, advice)
    return value


def _json_text_problem(data: bytes, kind: type = dict):
    if not data.strip():
        return None, "is empty"
    if data.startswith(UTF8_BOM):
        return None, "starts with a UTF-8 byte-order mark, which JSON readers refuse; remove it"
    text, problem = decode_text(data)
    if problem:
        return None, problem
    try:
        value = json.loads(text)
    except ValueError as error:  # json.JSONDecodeError; RecursionError is not expected from data
        return None, f"is not valid JSON ({_json_error(error)}; truncated or damaged?)"
    if kind is not None and not isinstance(value, kind):
        return None, f"holds a JSON {type(value).__name__}, not a JSON {_json_name(kind)}"
    return value, None


def jsonl_problem(path: Path) -> Optional[str]:
    """None if every non-empty line is a JSON object; else which line is not."""
    return _jsonl(read_bytes(path))[1]


def jsonl_ends_problem(path: Path, window: int = 1 << 20) -> Optional[str]:
    """`jsonl_problem` on the first and the last line only (a whole file is read when it is
    smaller than 2 x `window`): what damage to the whole file, or to its end, shows, at the
    cost of two reads however many lines it has."""
    size = Path(path).stat().st_size
    if size <= 2 * window or Path(path).suffix != ".jsonl":
        return jsonl_problem(path)
    with open(path, "rb") as handle:
        head = handle.read(window)
        handle.seek(size - window)
        tail = handle.read()
    first = head.split(b"\n", 1)[0]
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if b"\n" not in head or b"\n" not in tail.rstrip(b"\n"):
        return jsonl_problem(path)  # lines longer than the window
    problem = _jsonl(first + b"\n")[1]
    if problem is None and (problem := _jsonl(last + b"\n")[1]) is not None:
        problem = f"has a damaged last line (it {problem.removeprefix('line 1 ')})"
    return problem


def read_jsonl(path: Path, advice: str = "") -> list[dict]:
    rows, problem = _jsonl(read_bytes(path))
    if problem:
        raise bad_file(path, problem, advice)
    return rows


def _jsonl(data: bytes):
    if data.startswith(UTF8_BOM):
        return None, "starts with a UTF-8 byte-order mark, which JSON readers refuse; remove it"
    text, problem = decode_text(data)
    if problem:
        return None, problem
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            return None, f"line {number} is not valid JSON ({_json_error(error)}; truncated or damaged?)"
        if not isinstance(row, dict):
            return None, f"line {number} holds a JSON {type(row).__name__}, not an object"
        rows.append(row)
    return rows, None


def yaml_problem(path: Path) -> Optional[str]:
    """None if the file is UTF-8 YAML (tags such as lm-eval's `!function` are accepted)."""
    import yaml

    text, problem = decode_text(read_bytes(path))
    if problem:
        return problem
    loader = type("_AnyTags", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("", lambda *_: None)
    try:
        yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader that ignores unknown tags
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"is not valid YAML ({getattr(error, 'problem', None) or _first_line(error)}{where})"
    return None


# -- binary formats ------------------------------------------------------------------------
def safetensors_problem(path: Path) -> Optional[str]:
    """The header (length, JSON, every tensor's offsets and size) against the file's size."""
    size = Path(path).stat().st_size
    if size == 0:
        return "is empty"
    if size < 8:
        return f"is truncated: {size} bytes, shorter than a safetensors header"
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length > _MAX_HEADER or length < 2:
            return "is not a safetensors file (its first 8 bytes are not a header length)"
        if 8 + length > size:
            return f"is truncated: {size:,} bytes, shorter than its {length:,}-byte header"
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "is not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return "is not a safetensors file (its header is not a JSON object)"
    data_end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
                raise ValueError
            numel = math.prod(int(d) for d in shape)
        except (KeyError, TypeError, ValueError):
            return f"has a malformed header entry for tensor {name!r}"
        if dtype in _DTYPE_BYTES and numel * _DTYPE_BYTES[dtype] != end - begin:
            return f"has a malformed header: tensor {name!r} ({dtype} {shape}) spans {end - begin:,} bytes"
        data_end = max(data_end, end)
    expected = 8 + length + data_end
    if size < expected:
        return f"is truncated: {size:,} bytes, its header describes {expected:,}"
    if size > expected:
        return f"has {size - expected:,} bytes after its last tensor ({size:,} bytes, its header describes {expected:,})"
    return None


def torch_file_problem(path: Path) -> Optional[str]:
    """A `torch.save` file (.pt, .bin): its zip directory and every member within the file.
    The legacy (pickle) format cannot be checked without loading it."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "is empty"
    with open(path, "rb") as handle:
        head = handle.read(4)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.header_offset + info.compress_size > size:
                        return f"is truncated: {info.filename} runs past its end"
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            return f"is a damaged torch.save archive ({_first_line(error)})"
        return None
    if head.startswith(b"PK"):
        return f"is truncated or damaged: {size:,} bytes of a torch.save archive without its directory at the end"
    if head[:1] == b"\x80":  # a pickle: torch's legacy format
        return None
    return "is not a PyTorch file (neither torch.save's zip format nor a pickle)"


def gguf_problem(path: Path) -> Optional[str]:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if not magic:
        return "is empty"
    return None if magic == b"GGUF" else "is not a GGUF file (it does not start with GGUF)"


def parquet_problem(path: Path) -> Optional[str]:
    """None if the file is a Parquet file whose every column reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if Path(path).stat().st_size == 0:
        return "is empty"
    try:
        pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        return f"is not a valid Parquet file ({_first_line(error)})"
    return None


def file_problem(path: Path, *, quick: bool = False) -> Optional[str]:
    """The check that fits the file's name (an unknown kind of file: None); `quick`: a JSON
    lines file only by its first and last lines (`jsonl_ends_problem`)."""
    path = Path(path)
    name = path.name
    if name.endswith(".safetensors"):
        return safetensors_problem(path)
    if name.endswith((".pt", ".pth", ".bin")):
        return torch_file_problem(path)
    if name.endswith(".gguf"):
        return gguf_problem(path)
    if name.endswith(".json"):
        return json_problem(path)
    if name.endswith(".jsonl"):
        return jsonl_ends_problem(path) if quick else jsonl_problem(path)
    if name.endswith((".jinja", ".txt")):
        return text_problem(path)
    if name.endswith((".yaml", ".yml")):
        return yaml_problem(path)
    if name.endswith(".parquet"):
        return parquet_problem(path)
    if name == "tokenizer.model" and path.stat().st_size == 0:
        return "is empty"
    return None


def _json_error(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):  # some messages end in "at": "Unterminated string starting at"
        return f"{error.msg.removesuffix(' at')} at line {error.lineno}, column {error.colno}"
    return _first_line(error)


def _json_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({dict: "object", list: "array"}.get(k, k.__name__) for k in kinds)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__

