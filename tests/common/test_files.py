"""common.files: every format the lab reads is judged whole or not from its structure, and
what is wrong is said in words; seeded damage of each kind is always found."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import save_file

from common import files
from configs.errors import BadFile

SEED = 21


def _safetensors(path):
    save_file({"a": torch.arange(64, dtype=torch.float32).reshape(8, 8), "b": torch.ones(3, dtype=torch.bfloat16)}, str(path))


def _torch_file(path):
    torch.save({"w": torch.arange(100)}, path)


def _parquet(path):
    import pandas as pd

    pd.DataFrame({"x": list(range(50)), "y": [f"row {i}" for i in range(50)]}).to_parquet(path)


FORMATS = {  # name -> (writer, checker)
    "model.safetensors": (_safetensors, files.safetensors_problem),
    "qmodel.pt": (_torch_file, files.torch_file_problem),
    "config.json": (lambda p: p.write_text(json.dumps({"model_type": "qwen3", "hidden_size": 128, "name": "café"},
                                                      indent=2, ensure_ascii=False)), files.json_problem),
    "samples.jsonl": (lambda p: p.write_text("".join(json.dumps({"doc_id": i, "text": f"é {i}"}, ensure_ascii=False) + "\n"
                                                     for i in range(20))), files.jsonl_problem),
    "task.yaml": (lambda p: p.write_text("task: tiny_arc\nmetric_list:\n  - metric: acc\n    note: é\n"), files.yaml_problem),
    "table.parquet": (_parquet, files.parquet_problem),
}


@pytest.mark.parametrize("name", FORMATS)
def test_an_intact_file_has_no_problem(tmp_path, name):
    write, check = FORMATS[name]
    path = tmp_path / name
    write(path)
    assert check(path) is None
    assert files.file_problem(path) is None


def _damaged(tmp_path, name, damage: str, fraction: float = 0.5):
    write, check = FORMATS[name]
    path = tmp_path / name
    write(path)
    data = path.read_bytes()
    rng = random.Random(f"{SEED}-{name}-{damage}-{fraction}")
    if damage == "truncate":
        content = len(data.rstrip())
        cut = max(1, int(content * fraction))
        if data[cut - 1:cut] in (b"\n", b"}", b"]"):  # never a cut that leaves a shorter valid document
            cut -= 1
        path.write_bytes(data[:cut])
    elif damage == "random":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(len(data))))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "utf16":
        path.write_bytes(data.decode("utf-8").encode("utf-16"))
    elif damage == "latin1":
        path.write_bytes(data.decode("utf-8").encode("latin-1"))
    return path, check


# A truncated or emptied YAML file is often still YAML (a shorter mapping), and an empty JSON
# lines file holds no records (an empty samples.jsonl is a valid record's, e.g. speed): what
# only their content can tell is checked where they are used (settings validation, a
# record's manifest listing its samples' size), not here.
STRUCTURED = [name for name in FORMATS if name != "task.yaml"]
CASES = [(name, damage, fraction) for name in STRUCTURED for damage, fraction in
         [("truncate", 0.1), ("truncate", 0.5), ("truncate", 0.97), ("random", 0), ("empty", 0)]
         if (name, damage) != ("samples.jsonl", "empty")]
CASES += [("task.yaml", "random", 0)]
CASES += [(name, damage, 0) for name in ("config.json", "samples.jsonl", "task.yaml") for damage in ("utf16", "latin1")]


@pytest.mark.parametrize("name, damage, fraction", CASES)
def test_damage_of_every_kind_is_found_and_said_in_one_line(tmp_path, name, damage, fraction):
    path, check = _damaged(tmp_path, name, damage, fraction)
    problem = check(path)
    assert problem and "\n" not in problem, problem
    assert files.file_problem(path) == problem


def test_a_truncated_safetensors_file_says_how_much_is_missing(tmp_path):
    path = tmp_path / "model.safetensors"
    _safetensors(path)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-10])
    assert files.safetensors_problem(path) == f"is truncated: {size - 10:,} bytes, its header describes {size:,}"


@pytest.mark.parametrize("data, expected", [
    ("café au lait\n".encode("cp1252"), "it looks like Latin-1 / Windows-1252; convert it: `iconv -f WINDOWS-1252 -t UTF-8`"),
    ("hello\n".encode("utf-16"), "is UTF-16LE text, not UTF-8"),
    ("hello world, some text\n".encode("utf-16-le"), "UTF-16 without a byte-order mark"),
    (bytes(range(256)) * 4, "binary data, not text"),
])
def test_text_in_another_encoding_is_refused_naming_the_encoding(tmp_path, data, expected):
    path = tmp_path / "calibration.txt"
    path.write_bytes(data)
    with pytest.raises(BadFile) as raised:
        files.read_text(path)
    assert expected in str(raised.value) and str(raised.value).startswith(str(path))


def test_utf8_with_a_byte_order_mark_is_read_as_text_but_refused_as_json(tmp_path):
    text = tmp_path / "a.txt"
    text.write_bytes(files.UTF8_BOM + "café\n".encode())
    assert files.read_text(text) == "café\n"
    config = tmp_path / "config.json"
    config.write_bytes(files.UTF8_BOM + b"{}")
    assert "byte-order mark" in files.json_problem(config)


def test_a_jsonl_problem_names_the_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": \n')
    assert files.jsonl_problem(path).startswith("line 3 is not valid JSON")
    path.write_text('{"a": 1}\n[1, 2]\n')
    assert files.jsonl_problem(path) == "line 2 holds a JSON list, not an object"


@pytest.mark.parametrize("text, said", [
    ('{"name": "caf', "is not valid JSON (Unterminated string starting at line 1, column 10; truncated or damaged?)"),
    ('{"name": "a\tb"}', "is not valid JSON (Invalid control character at line 1, column 12; truncated or damaged?)"),
    ('{"name": ', "is not valid JSON (Expecting value at line 1, column 10; truncated or damaged?)"),
])
def test_a_json_problem_says_where_in_plain_words(tmp_path, text, said):
    path = tmp_path / "config.json"
    path.write_text(text)
    assert files.json_problem(path) == said
    (tmp_path / "data.jsonl").write_text(f'{{"a": 1}}\n{text}\n')
    assert files.jsonl_problem(tmp_path / "data.jsonl") == f"line 2 {said}"


def test_a_truncated_gzip_file_is_a_bad_file(tmp_path):
    import gzip

    path = tmp_path / "data.txt.gz"
    path.write_bytes(gzip.compress(("line\n" * 1000).encode()))
    assert files.read_text(path).count("\n") == 1000
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(BadFile, match="is not a complete .gz archive"):
        files.read_text(path)


def test_a_large_jsonl_file_is_judged_by_its_first_and_last_lines(tmp_path):
    path = tmp_path / "samples.jsonl"
    line = json.dumps({"doc_id": 0, "text": "x" * 200}) + "\n"
    path.write_text(line * 20000)  # ~4 MB: more than two windows
    assert files.jsonl_ends_problem(path) is None
    data = bytearray(path.read_bytes())
    data[-50:-1] = b"\xff" * 49
    path.write_bytes(bytes(data))
    assert files.jsonl_ends_problem(path).startswith("has a damaged last line (it is not UTF-8 text")
    path.write_bytes(b"{not json}\n" + bytes(data[11:]))
    assert files.jsonl_ends_problem(path).startswith("line 1 is not valid JSON")
