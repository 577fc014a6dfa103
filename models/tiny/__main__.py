"""`python -m models.tiny build|path|verify|release ...`: train the tiny family, print
where the lab finds it, check a build or the release, or make the release of a build."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import run_command
from configs.errors import LabError
from models.tiny.build import cache_root, ensure_built, find_build
from models.tiny.family import TinyFamily
from models.tiny.release import RELEASE_DIR, VERIFY_SAMPLE, load_release, make_release, verify
from models.tiny.generator import TASKS
from models.tiny.settings import PROFILES, SIZES


class _OneLineErrors(argparse.ArgumentParser):
    """Bad arguments: one line naming the problem (argparse lists valid choices), exit 2."""

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify":
            return _verify(Path(args.folder), args.sample)
        if args.command == "release":
            logging.basicConfig(level=logging.INFO, format="%(message)s")
            print(f"release: {make_release(TinyFamily(Path(args.build)), Path(args.out))}")
            return 0
    except (LabError, ValueError) as error:  # one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    try:
        sizes = _parse_sizes(args.sizes)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.command == "path":
        family = find_build(cache_root(args.cache_dir), args.profile, sizes, args.seed)
        if family is None and (args.profile, args.seed) == ("full", 0):
            family = load_release()
        if family is None:
            print(f"not built: run `python -m models.tiny build --profile {args.profile} "
                  f"--seed {args.seed}`", file=sys.stderr)
            return 1
        print(family.root)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # `build` trains (or finds a cached build); the release is what the lab uses otherwise.
    family = ensure_built(sizes, args.profile, args.seed, args.cache_dir, args.force,
                          use_release=False)
    print(f"family: {family.root}")
    for size in family.sizes:
        print(f"{size}: {family.model_path(size)}")
    for task in TASKS:
        print(f"data {task}: {family.data_path(task)}")
    print(f"calibration: {family.calibration_path}")
    print(f"report: {family.root / 'data' / 'train_report.json'}")
    return 0


def _verify(folder: Path, sample: int) -> int:
    compared = verify(folder, sample)
    answers = ", ".join(f"{size} {n}" for size, n in compared.items())
    print(f"verified {folder}: checksums hold; re-generated held-out answers equal the "
          f"recorded ones ({answers})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="python -m models.tiny", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)
    check = commands.add_parser("verify", help="check a build or the release (default)")
    check.add_argument("folder", nargs="?", default=str(RELEASE_DIR))
    check.add_argument("--sample", type=int, default=VERIFY_SAMPLE,
                       help="held-out prompts per task and size to re-generate (a multiple of 64)")
    release = commands.add_parser("release", help="make the release of a complete build")
    release.add_argument("build", help="the build's folder (see `path`)")
    release.add_argument("--out", default=str(RELEASE_DIR))
    for name, help_text in (("build", "train the family unless it is cached (resumes a killed build)"),
                            ("path", "print the folder the lab uses: a cached build, or the release")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--sizes", default=",".join(SIZES),
                             help=f"comma-separated, from {','.join(SIZES)} (default: all)")
        command.add_argument("--profile", default="full", choices=list(PROFILES))
        command.add_argument("--seed", default=0, type=_seed)
        command.add_argument("--cache-dir", default=None,
                             help="cache root (default: $QLAB_CACHE or ~/.cache/quantlab)")
        if name == "build":
            command.add_argument("--force", action="store_true", help="rebuild even if cached")
    return parser


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}")
    return int(text)


def _parse_sizes(text: str) -> tuple[str, ...]:
    sizes = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise ValueError(f"unknown size(s) {', '.join(unknown) or '(none)'} in --sizes; "
                         f"choices: {', '.join(SIZES)}")
    return tuple(s for s in SIZES if s in sizes)


if __name__ == "__main__":
    sys.exit(run_command(main, sys.argv[1:]))  # Ctrl-C / SIGTERM: one line; a rerun of build resumes
