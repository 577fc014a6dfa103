"""`python -m models.tiny build|path ...`: build the tiny family or print where it is."""

from __future__ import annotations

import argparse
import logging
import sys

from models.tiny.build import cache_root, ensure_built, find_build
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
        sizes = _parse_sizes(args.sizes)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.command == "path":
        family = find_build(cache_root(args.cache_dir), args.profile, sizes, args.seed)
        if family is None:
            print(f"not built: run `python -m models.tiny build --profile {args.profile} "
                  f"--seed {args.seed}`", file=sys.stderr)
            return 1
        print(family.root)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    family = ensure_built(sizes, args.profile, args.seed, args.cache_dir, args.force)
    print(f"family: {family.root}")
    for size in family.sizes:
        print(f"{size}: {family.model_path(size)}")
    for task in TASKS:
        print(f"data {task}: {family.data_path(task)}")
    print(f"calibration: {family.calibration_path}")
    print(f"report: {family.root / 'data' / 'train_report.json'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="python -m models.tiny", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)
    for name, help_text in (("build", "build the family unless it is cached"),
                            ("path", "print the cached build's folder")):
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
    sys.exit(main())
