"""scripts/gpu_wheels.py: which packages are carried, and the slimmed bitsandbytes wheel."""

import base64
import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_wheels.py"
spec = importlib.util.spec_from_file_location("gpu_wheels", SCRIPT)
gpu_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_wheels)


def test_have_reads_freeze_list_and_name_files(tmp_path):
    have = tmp_path / "have.txt"
    have.write_text("# comment\nPyYAML==6.0.3\ntyping_extensions @ file:///x\nhuggingface-hub 1.33.0\n"
                    "torch numpy\n")
    names = gpu_wheels.read_have(have)
    assert {"pyyaml", "typing-extensions", "huggingface-hub", "torch", "numpy"} <= names
    assert "comment" not in names


def test_the_lent_machines_list_covers_torch_and_transformers_but_not_the_quantizers():
    names = gpu_wheels.read_have(gpu_wheels.DEFAULT_HAVE)
    assert {"torch", "transformers", "accelerate", "safetensors"} <= names
    assert not names & {"llmcompressor", "hqq", "bitsandbytes", "lm-eval", "hydra-core", "compressed-tensors"}


def fake_bitsandbytes_wheel(folder: Path) -> Path:
    wheel = folder / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    files = {"bitsandbytes/__init__.py": b"x = 1\n", "bitsandbytes/libbitsandbytes_cpu.so": b"cpu",
             "bitsandbytes/libbitsandbytes_cuda118.so": b"old" * 100, "bitsandbytes/libbitsandbytes_cuda130.so": b"new",
             "bitsandbytes/libbitsandbytes_rocm72.so": b"rocm"}
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("bitsandbytes-0.50.2.dist-info/RECORD", "stale\n")
    return wheel


def test_slim_bitsandbytes_keeps_named_cuda_and_cpu_libraries_with_a_true_record(tmp_path):
    wheel = fake_bitsandbytes_wheel(tmp_path)
    gpu_wheels.slim_bitsandbytes(wheel, ["130"])
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read("bitsandbytes-0.50.2.dist-info/RECORD").decode().splitlines()
        new_library = archive.read("bitsandbytes/libbitsandbytes_cuda130.so")
    assert "bitsandbytes/libbitsandbytes_cuda130.so" in names and "bitsandbytes/libbitsandbytes_cpu.so" in names
    assert "bitsandbytes/libbitsandbytes_cuda118.so" not in names
    assert "bitsandbytes/libbitsandbytes_rocm72.so" not in names
    digest = base64.urlsafe_b64encode(hashlib.sha256(new_library).digest()).rstrip(b"=").decode()
    assert f"bitsandbytes/libbitsandbytes_cuda130.so,sha256={digest},{len(new_library)}" in record
    assert not any("cuda118" in line for line in record)


def test_slim_bitsandbytes_refuses_a_cuda_version_it_has_no_library_for(tmp_path):
    wheel = fake_bitsandbytes_wheel(tmp_path)
    with pytest.raises(SystemExit, match="no library for CUDA 999"):
        gpu_wheels.slim_bitsandbytes(wheel, ["999"])
    with zipfile.ZipFile(wheel) as archive:  # left as it was
        assert "bitsandbytes/libbitsandbytes_cuda118.so" in archive.namelist()
