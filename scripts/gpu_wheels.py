"""Wheels that let an offline GPU machine run the lab on the CUDA PyTorch it already has.

    python scripts/gpu_wheels.py [--python python3.12] [--dest .whl] [--have FILE] [--cuda 130,132]

Run on a machine WITH network; carry the folder to the GPU machine, where
`bash scripts/gpu_check.sh` installs it into /tmp/qlab-site (see docs/benchmarks.md).

1. `pip wheel` every package of requirements/main.txt except torch, with its dependencies,
   using an interpreter of the GPU machine's Python version (wheels of compiled packages
   are per Python version; `pip download --python-version` cannot build the packages
   published only as source, such as hqq and sqlitedict, so an interpreter is needed).
2. Drop the packages the GPU machine already has (`--have`: a `pip freeze`/name list of it;
   default requirements/gpu-image-packages.txt, the lent machines' image). Their
   versions there are used as they are; gpu_check prints where they differ from the pins.
3. Keep in bitsandbytes only the native libraries of the CUDA versions named by --cuda
   (and the CPU one): its wheel holds one per CUDA release, ~130 MB unpacked, more than
   the 64 MiB a lent machine's call can carry.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_HAVE = REPO / "requirements" / "gpu-image-packages.txt"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    return normalized(path.name.split("-")[0])


def read_have(path: Path) -> set[str]:
    """Package names from a `pip freeze`, `pip list` or one-name-per-line file."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        for token in line.split():  # `pip list` lines also give a version: harmless as a name
            names.add(normalized(re.split(r"[=<>~@]", token)[0]))
    return names


def slim_bitsandbytes(wheel: Path, cuda_versions: list[str]) -> None:
    """Rewrite the wheel without the native libraries of other CUDA/ROCm versions (RECORD updated)."""
    cuda_libraries = {f"libbitsandbytes_cuda{v}.so" for v in cuda_versions}
    keep = cuda_libraries | {"libbitsandbytes_cpu.so"}
    dropped = []
    with tempfile.TemporaryDirectory() as tmp:
        slim = Path(tmp) / wheel.name
        with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
            record_name = next(n for n in source.namelist() if n.endswith(".dist-info/RECORD"))
            records = []
            for item in source.infolist():
                base = item.filename.rsplit("/", 1)[-1]
                if base.startswith("libbitsandbytes_") and base not in keep:
                    dropped.append(base)
                    continue
                if item.filename == record_name:
                    continue
                data = source.read(item)
                target.writestr(item, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                records.append(f"{item.filename},sha256={digest},{len(data)}")
            target.writestr(record_name, "\n".join(records + [f"{record_name},,"]) + "\n")
            kept = {n.rsplit("/", 1)[-1] for n in target.namelist()}
        if not kept & cuda_libraries:
            sys.exit(f"error: bitsandbytes has no library for CUDA {','.join(cuda_versions)} "
                     f"(it has: {sorted(n for n in dropped if 'cuda' in n)}); pass --cuda")
        shutil.move(slim, wheel)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="python3.12", help="interpreter of the GPU machine's Python version")
    parser.add_argument("--dest", type=Path, default=REPO / ".whl")
    parser.add_argument("--have", type=Path, default=DEFAULT_HAVE, help="packages the GPU machine already has")
    parser.add_argument("--cuda", default="130,132", help="CUDA versions of bitsandbytes' libraries to keep "
                                                          "(torch.version.cuda there, without the dot)")
    parser.add_argument("--requirements", type=Path, default=REPO / "requirements" / "main.txt")
    args = parser.parse_args(argv)

    if shutil.which(args.python) is None:
        print(f"error: no interpreter {args.python!r}: pass --python with an interpreter of the GPU machine's Python version "
              "(compiled wheels are per version)", file=sys.stderr)
        return 2
    have = read_have(args.have)
    requirements = [line for line in args.requirements.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#") and normalized(line.split("==")[0]) != "torch"]
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "requirements.txt"
        listing.write_text("\n".join(requirements) + "\n")
        built = Path(tmp) / "wheels"
        # torch comes in as a dependency of the lab's libraries and is dropped below (the
        # GPU machine has its own CUDA build); it is fetched once into pip's cache.
        subprocess.run([args.python, "-m", "pip", "wheel", "-q", "-w", str(built), "-r", str(listing)], check=True)
        args.dest.mkdir(parents=True, exist_ok=True)
        for old in args.dest.glob("*.whl"):
            old.unlink()
        kept = []
        for wheel in sorted(built.glob("*.whl")):
            if wheel_name(wheel) in have:
                continue
            target = args.dest / wheel.name
            shutil.copy2(wheel, target)
            if wheel_name(wheel) == "bitsandbytes":
                slim_bitsandbytes(target, args.cuda.split(","))
            kept.append(target)
    total = sum(w.stat().st_size for w in kept)
    print(f"{len(kept)} wheels in {args.dest}, {total / 2**20:.1f} MiB (a lent GPU machine's call carries 64 MiB "
          f"with the working tree):")
    for wheel in kept:
        print(f"  {wheel.stat().st_size / 2**20:6.2f} MiB  {wheel.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
