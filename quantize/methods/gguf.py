"""GGUF k-quant levels through llama.cpp's own converter and quantizer, in `.venv-gguf`."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from common.storage import (cache_root, exclusive_lock, file_sha256, fingerprint, folder_problem, publish, read_manifest,
                            remember_sha256, remembered_sha256, staging_folder)
from configs.errors import ConfigError, choices_error
from models.gguf import FLOAT_TYPES, bits_per_weight, tensor_table
from models.loading import OncePerMessage, load_tokenizer
from quantize.methods.base import QuantMethod, linear_input_dims, register

log = logging.getLogger("quantize")
warn_once = logging.getLogger("quantize.gguf")  # the config-based warning: validation runs more than once
warn_once.addFilter(OncePerMessage())

# quant.type -> its nominal bits (what `weight_bits` and the report's bits column say); the
# k-quant mixes (_S/_M/_L) give some tensors more bits, so the manifest also records the
# effective bits per weight read back from the file.
TYPES = {"Q8_0": 8, "Q6_K": 6, "Q5_K_M": 5, "Q5_K_S": 5, "Q4_K_M": 4, "Q4_K_S": 4, "Q4_0": 4,
         "Q3_K_L": 3, "Q3_K_M": 3, "Q3_K_S": 3, "Q2_K": 2, "F16": 16, "BF16": 16}
K_QUANTS = tuple(t for t in TYPES if "_K" in t)
K_BLOCK = 256  # a k-quant block: rows whose length it does not divide get another type
# What llama.cpp gives such a tensor instead (src/llama-quant.cpp tensor_type_fallback).
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
FALLBACK_RULE = ", ".join(f"{k} -> {v}" for k, v in FALLBACK.items())
# Architectures whose GGUF both llama.cpp's converter writes and transformers reads back
# (its GGUF loader is the lab's evaluation path), among the lab's registered models.
ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")
SOURCE_TYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}  # lossless: quantize from the model's dtype
LLAMA_CPP_PYTHON = "0.3.36"  # scripts/setup_gguf.sh builds this version (vendored llama.cpp 0c1e57098)
CONVERSIONS = "gguf-conversions"  # cache_root()/<this>/<key>: one source GGUF per checkpoint, dtype and llama.cpp
SOURCE_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json", "config.json")


@register
class GGUF(QuantMethod):
    """GGUF k-quant levels (Q8_0 ... Q2_K, F16/BF16) written by llama.cpp itself.

    Library: llama.cpp at one pinned version (llama-cpp-python 0.3.36, built by
    `scripts/setup.sh gguf`): its `convert_hf_to_gguf.py` turns the checkpoint into a GGUF in
    the model's own dtype (F32 for float32: lossless), then `llama_model_quantize` writes the
    level, with llama.cpp's own per-tensor type choices (the _S/_M/_L mixes give attn_v,
    ffn_down, ... more bits). A tensor whose rows are not a multiple of 256 cannot hold a
    k-quant: llama.cpp silently gives it another type (Q4_K -> Q5_0, ...). The lab says so
    before quantizing (from config.json at validation, then llama.cpp's own dry run per
    tensor), records the type of every tensor as read back from the file, and the effective
    bits per weight. The artifact: the .gguf, the source's config.json and tokenizer files
    (transformers loads it dequantized for evaluation; llama.cpp runs it natively).
    The converted source GGUF (the model's size in its dtype) is made once per checkpoint
    (its files' content), dtype, llama.cpp version and converter options, into the lab cache
    (`cache_root()/gguf-conversions`, one folder per conversion; delete it to free the
    space), and every level is quantized from it.
    Settings: quant.type (one of TYPES); method.imatrix (compute llama.cpp's importance matrix
    with llama-imatrix on the calibration set and quantize with it); method.threads (llama.cpp
    threads while quantizing; the output does not depend on it).
    """

    name = "gguf"
    supported_bits = ()  # the level is quant.type
    environment = "gguf"
    artifact_format = "gguf"
    loader = "gguf"

    @dataclass
    class Options:
        imatrix: bool = False
        threads: int = 1

        def validate(self) -> None:
            if self.threads < 1:
                raise ConfigError(f"method.threads={self.threads} must be >= 1")

    def __init__(self, quant, options, dtype="bfloat16"):
        super().__init__(quant, options, dtype)
        self.needs_calibration = options.imatrix  # the importance matrix is computed on calibration data
        self.details: dict = {}

    # -- validation, before any weight is loaded --------------------------------------------
    def validate(self) -> None:
        if self.quant.type is None:
            raise ConfigError(f"method=gguf needs quant.type=<level>; choices: {', '.join(TYPES)}")
        if self.quant.type not in TYPES:
            raise choices_error("quant.type", self.quant.type, TYPES)
        if self.options.imatrix and self.quant.type in FLOAT_TYPES:
            raise ConfigError(f"method.imatrix=true does nothing for quant.type={self.quant.type} (not quantized); "
                              "use it with a quantized level, e.g. quant.type=Q4_K_M")

    def check_model(self, model_config: Any) -> None:
        model_type = getattr(model_config, "model_type", None)
        if model_type not in ARCHITECTURES:
            raise ConfigError(f"method=gguf does not support this model's architecture model_type={model_type!r}; "
                              f"supported: {', '.join(ARCHITECTURES)}; quantize it with another method (e.g. method=rtn)")
        odd = predicted_fallback_rows(model_config)
        if odd and self.quant.type in K_QUANTS:
            warn_once.warning("quant.type=%s: rows of %s are not a multiple of %d, so llama.cpp gives those tensors "
                              "another type (%s); the exact list follows llama.cpp's dry run and is recorded in "
                              "the manifest", self.quant.type, ", ".join(f"{k}={v}" for k, v in odd.items()), K_BLOCK,
                              FALLBACK_RULE)

    def plan_notes(self, model_config: Any) -> list[str]:
        note = fallback_note(self.quant.type, model_config)
        return [note] if note else []

    def variant_label(self) -> str:
        return f"gguf-{self.quant.type}" + ("-imatrix" if self.options.imatrix else "")

    def describe(self) -> dict:
        return {**super().describe(), "type": self.quant.type, "llama_cpp_python": LLAMA_CPP_PYTHON}

    # -- work: files, no torch model --------------------------------------------------------
    def load(self, source_dir: Path, device: str = "auto"):
        """llama.cpp's converter reads the checkpoint itself: (source folder, tokenizer)."""
        self._source_dir = Path(source_dir)
        return self._source_dir, load_tokenizer(source_dir)

    def quantize(self, model, tokenizer, calibration):
        source_dir = model
        self._work = tempfile.TemporaryDirectory(prefix="qlab-gguf-")
        work = Path(self._work.name)
        source = converted_source(source_dir, SOURCE_TYPES[self.dtype])
        imatrix, imatrix_info = None, None
        if self.options.imatrix:
            imatrix, imatrix_info = compute_imatrix(source, calibration, tokenizer, work, threads=self.options.threads)
        source_tensors = tensor_table(source)
        rows = {t["name"]: t["shape"][0] for t in source_tensors}
        predicted = quantize_file(source, Path("/dev/null"), self.quant.type, imatrix=imatrix,
                                  threads=self.options.threads, dry_run=True)
        fallbacks = fallback_tensors(predicted, rows, self.quant.type)
        log.info("llama.cpp's dry run: %s", fallback_summary(self.quant.type, predicted, fallbacks))
        for name, kind in fallbacks.items():
            log.info("  %s (rows of %d) -> %s", name, rows[name], kind)
        target = work / f"model-{self.quant.type}.gguf"
        quantize_file(source, target, self.quant.type, imatrix=imatrix, threads=self.options.threads)
        tensors = tensor_table(target)
        actual = {t["name"]: t["type"] for t in tensors}
        if actual != predicted:  # llama.cpp's own dry run disagrees with its output: say so, loudly
            log.warning("llama.cpp's dry run predicted other tensor types than it wrote: %s",
                        {n: (predicted.get(n), t) for n, t in actual.items() if predicted.get(n) != t})
        fallbacks = fallback_tensors(actual, rows, self.quant.type)
        self.details = {
            "num_parameters": sum(t["n_elements"] for t in source_tensors),
            "gguf": {
                "type": self.quant.type,
                "file": target.name,
                "source_type": SOURCE_TYPES[self.dtype].upper(),
                "bits_per_weight": round(bits_per_weight(tensors), 4),
                "bits_per_weight_matrices": round(bits_per_weight(tensors, matrices_only=True), 4),
                "tensor_types": actual,
                "type_counts": _counts(actual),
                "predicted_types": predicted,
                "fallback_tensors": fallbacks,
                "fallback_summary": fallback_summary(self.quant.type, actual, fallbacks),
                "imatrix": imatrix_info,
            },
        }
        return target

    def save(self, model, tokenizer, folder: Path) -> None:
        target = Path(model)
        shutil.move(str(target), folder / target.name)
        for name in SOURCE_FILES:  # the source's own files: config (for transformers) and tokenizer
            if (self._source_dir / name).is_file():
                shutil.copy2(self._source_dir / name, folder / name)
        self._work.cleanup()

    def num_parameters(self, model) -> int:
        return self.details["num_parameters"]

    def manifest_fields(self) -> dict:
        return {"weight_bits": TYPES[self.quant.type], "gguf": self.details["gguf"]}


# -- llama.cpp's tools ------------------------------------------------------------------------
def llama_cpp_dir() -> Path:
    """The converter's folder in this environment (scripts/setup_gguf.sh copies it there)."""
    folder = Path(sys.prefix) / "llama.cpp"
    if not (folder / "convert_hf_to_gguf.py").is_file():
        raise ConfigError(f"llama.cpp's converter is missing from {folder}: rebuild the environment with "
                          "`rm -rf .venv-gguf && scripts/setup.sh gguf`")
    return folder


def convert(source_dir: Path, out: Path, outtype: str) -> None:
    """The checkpoint as a GGUF in `outtype` (f32, bf16, f16), by llama.cpp's converter."""
    script = Path(__file__).resolve().parent.parent / "gguf_convert.py"
    command = [sys.executable, str(script), str(llama_cpp_dir()), "--", str(source_dir),
               "--outtype", outtype, "--outfile", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not out.is_file():
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"llama.cpp's converter failed on {source_dir} (exit {result.returncode}):\n{tail}")


def converted_source(source_dir: Path, outtype: str) -> Path:
    """The checkpoint as a GGUF in `outtype`, converted once per (checkpoint files, outtype,
    llama.cpp version, converter options) into the lab cache and reused by every level.

    Published like an artifact (staging folder, manifest last, one rename); a lock per
    conversion makes a concurrent level wait for the first one's file instead of converting
    again; a cached folder whose file is truncated, or changed since it was written (its
    sha256, remembered by `remembered_sha256` until the file's size, times or inode change,
    is not its manifest's), is converted again. The checkpoint's files are hashed the same
    way, so a 7B checkpoint is read once, not for every level."""
    inputs = conversion_inputs(source_dir, outtype)
    key = fingerprint(inputs)
    final = cache_root() / CONVERSIONS / key[:16]
    name = f"source-{outtype}.gguf"
    with exclusive_lock(final.with_name(f".{final.name}.lock")):
        problem = _conversion_problem(final, name, key) if final.exists() else None
        if final.exists() and problem is None:
            log.info("llama.cpp's conversion of %s (%s) reused from the cache: %s", source_dir, outtype, final)
            return final / name
        if problem:
            log.warning("the cached conversion at %s is unusable (%s); converting again", final, problem)
        log.info("converting %s to a %s GGUF with llama.cpp's converter (once, cached in %s)", source_dir, outtype, final)
        with staging_folder(final) as staging:
            convert(source_dir, staging / name, outtype)
            digest = file_sha256(staging / name)
            # replace=True: the folder published is this one, so `digest` is its file's
            publish(staging, final, {"conversion": key, "inputs": inputs, "sha256": {name: digest}}, replace=True)
            remember_sha256(final / name, digest)  # the next level checks it without reading it again
    return final / name


def conversion_inputs(source_dir: Path, outtype: str) -> dict:
    """What a conversion's bytes depend on: the checkpoint's files (their content), the
    output type, llama.cpp's version and its converter, and the lab's wrapper of it."""
    return {"source": {p.name: _content_id(p) for p in sorted(Path(source_dir).iterdir()) if p.is_file()},
            "outtype": outtype, "llama_cpp_python": LLAMA_CPP_PYTHON,
            "converter": file_sha256(llama_cpp_dir() / "convert_hf_to_gguf.py"),
            "wrapper": file_sha256(Path(__file__).resolve().parent.parent / "gguf_convert.py")}


def _content_id(path: Path) -> str:
    """A file's sha256; for a Hugging Face cache snapshot's link, its blob's name (the
    sha256 of an LFS file, the git hash of a small one), without reading the file; a large
    file's is read once and remembered until it changes."""
    real = Path(os.path.realpath(path))
    if path.is_symlink() and real.parent.name == "blobs":
        return f"blob:{real.name}"
    return remembered_sha256(path)


def _conversion_problem(folder: Path, name: str, key: str) -> Optional[str]:
    problem = folder_problem(folder)  # the manifest, every file's size, the GGUF header
    if problem:
        return problem
    manifest = read_manifest(folder)
    if manifest.get("conversion") != key or name not in manifest.get("sha256", {}):
        return f"its manifest is for another conversion ({json.dumps(manifest.get('conversion'))})"
    if remembered_sha256(folder / name) != manifest["sha256"][name]:
        return f"{name} does not match the sha256 in its manifest"
    return None


class _LlamaLog:
    """llama.cpp's log routed into a list while active (its quantizer reports per tensor there)."""

    def __enter__(self):
        import llama_cpp

        self.lines: list[str] = []
        self._callback = llama_cpp.llama_log_callback(lambda level, text, data: self.lines.append(text.decode("utf-8", "replace")))
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
        return self

    def __exit__(self, *exc):
        import llama_cpp
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))

    @property
    def text(self) -> str:
        return "".join(self.lines)


# "[  3/ 24]  blk.0.attn_q.weight - [  128,   128,  1,  1], type =    f32, size = 0.062 MB -> 0.011 MB (q5_0)"
_DRY_RUN_LINE = re.compile(r"\]\s+(\S+)\s+- \[[^\]]*\], type =\s+(\S+),[^\n]*?(?:\((\w+)\))?\s*$", re.M)


def quantize_file(source: Path, target: Path, level: str, *, imatrix: Optional[dict] = None, threads: int = 1,
                  dry_run: bool = False) -> dict[str, str]:
    """llama_model_quantize(source -> target, level); returns {tensor: type} from its log
    (with dry_run: what it would write, without writing)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{level}")
    params.dry_run = dry_run
    keep = None
    if imatrix:
        array, keep = _imatrix_array(imatrix)
        params.imatrix = ctypes.cast(array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    with _LlamaLog() as captured:
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    del keep
    if code != 0:
        raise RuntimeError(f"llama_model_quantize failed ({code}):\n{captured.text[-2000:]}")
    return {name: (new or old).upper() for name, old, new in _DRY_RUN_LINE.findall(captured.text)}


def _imatrix_array(imatrix: dict):
    """{tensor: float32 importance per input column} as llama.cpp's NULL-terminated array;
    the numpy buffers are returned too: they must outlive the call."""
    import llama_cpp
    import numpy as np

    keep = []
    array = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
    for i, (name, values) in enumerate(imatrix.items()):
        buffer = np.ascontiguousarray(values, dtype=np.float32)
        keep.append(buffer)
        array[i].name = name.encode()
        array[i].data = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        array[i].size = buffer.size
    array[len(imatrix)].name = None
    return array, keep


def compute_imatrix(source: Path, calibration, tokenizer, work: Path, *, threads: int) -> tuple[dict, dict]:
    """llama.cpp's importance matrix (llama-imatrix) over the calibration samples, as
    {tensor: in_sum2 / counts} (what llama.cpp's quantize tool passes on), and what it was
    computed on. The samples are
    written back as text (special tokens included, parsed by --parse-special), each chunk
    as long as the set's samples."""
    import gguf
    import numpy as np

    tool = Path(sys.prefix) / "bin" / "llama-imatrix"
    if not tool.exists():
        raise ConfigError(f"method.imatrix=true needs llama-imatrix, missing from {tool.parent}: rebuild the "
                          "environment with `rm -rf .venv-gguf && scripts/setup.sh gguf`")
    text_file, out = work / "calibration.txt", work / "imatrix.gguf"
    text_file.write_text("".join(tokenizer.decode(sample) for sample in calibration.samples))
    chunk = max(32, min(512, max(len(s) for s in calibration.samples)))
    command = [str(tool), "-m", str(source), "-f", str(text_file), "-o", str(out), "-c", str(chunk),
               "-t", str(threads), "--parse-special", "--no-ppl", "--seed", "0"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not out.is_file():
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"llama-imatrix failed (exit {result.returncode}):\n{tail}")
    sums, counts, info = {}, {}, {}
    reader = gguf.GGUFReader(str(out))
    for field in reader.fields.values():
        if field.name in ("imatrix.chunk_count", "imatrix.chunk_size"):
            info[field.name.removeprefix("imatrix.")] = int(field.parts[field.data[0]][0])
    for tensor in reader.tensors:
        name, _, kind = tensor.name.rpartition(".")
        (sums if kind == "in_sum2" else counts)[name] = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
    imatrix = {}
    for name, total in sums.items():
        count = np.rint(counts[name]).astype(np.float32)
        values = total.reshape(count.size, -1) / np.where(count > 0, count, 1)[:, None]
        values[count <= 0] = 1.0
        imatrix[name] = values.reshape(-1)
    return imatrix, {**info, "entries": len(imatrix), "tool": "llama-imatrix", "chunk_tokens": chunk}


# -- fallback types ---------------------------------------------------------------------------
def predicted_fallback_rows(model_config: Any) -> dict[str, int]:
    """The linear input widths (GGUF row lengths) of this model that 256 does not divide."""
    return {name: dim for name, dim in linear_input_dims(model_config).items() if dim % K_BLOCK}


# The GGUF tensors of a decoder layer by the linear input width (row length) they have.
TENSORS_BY_WIDTH = {"hidden_size": ("token_embd", "attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"),
                    "num_attention_heads*head_dim": ("attn_output",), "intermediate_size": ("ffn_down",)}


def fallback_note(level: str, model_config: Any) -> Optional[str]:
    """What a sweep's --dry-run says about a k-quant level of a model whose rows 256 does not
    divide: which tensors llama.cpp will give another type (from config.json alone)."""
    odd = predicted_fallback_rows(model_config)
    if level not in K_QUANTS or not odd:
        return None
    tensors = ", ".join(f"{'/'.join(TENSORS_BY_WIDTH[name])} (rows {width})" for name, width in odd.items())
    return (f"{level}: {tensors} cannot hold k-quants (rows not a multiple of {K_BLOCK}); llama.cpp gives them "
            f"another type ({FALLBACK_RULE})")


def fallback_tensors(types: dict[str, str], rows: dict[str, int], level: str) -> dict[str, str]:
    """{tensor: type} of the tensors of a k-quant level that llama.cpp gave another type
    because their rows (`rows`: ne0 per tensor) are not a multiple of 256."""
    if level not in K_QUANTS:
        return {}
    return {name: kind for name, kind in types.items()
            if rows.get(name, K_BLOCK) % K_BLOCK and "_K" not in kind and kind not in FLOAT_TYPES}


def fallback_summary(level: str, types: dict[str, str], fallbacks: dict[str, str]) -> str:
    """e.g. "Q4_K_M, 12 of 24 tensors Q5_0, Q8_0" or "Q4_K_M, no fallback"."""
    if not fallbacks:
        return f"{level}, no fallback"
    kinds = ", ".join(f"{count} {kind}" for kind, count in _counts(fallbacks).items())
    return f"{level}, {len(fallbacks)} of {len(types)} tensors fell back ({kinds})"


def _counts(types: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in types.values():
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))
