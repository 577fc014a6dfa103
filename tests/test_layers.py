"""The lab's import layers (pyproject.toml's [tool.importlinter], docs/design.md) hold."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "import-linter is not installed (requirements/main.txt)"
    return subprocess.run([command, "--no-cache", str(config)], cwd=ROOT, capture_output=True, text=True)


def test_the_layer_contracts_are_kept():
    result = lint_imports(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


LAYERS = "config -> model + calibration -> artifact -> records -> sweep, report"
NO_LOOPS = "no import loops between the modules of a package"


@pytest.mark.parametrize("importer, line, broken", [
    ("configs/schema.py", "from calibration.loading import resolve", LAYERS),  # the ground floor importing up
    ("models/loading.py", "from quantize.methods.base import build_method", LAYERS),  # a loop through quantize
    ("sweep/cells.py", "from sweep.run import run_sweep", NO_LOOPS),  # a loop inside the sweep package
])
def test_the_contracts_fail_on_an_import_that_breaks_them(tmp_path, importer, line, broken):
    """Each contract really checks: a copy of the lab with one bad import breaks it."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    module = tmp_path / importer
    module.write_text(module.read_text() + f"\n\ndef _bad():\n    {line}\n")
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                             "sys.exit(lint_imports_command())", "--no-cache"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0, result.stdout[-3000:]
    assert f"{broken} BROKEN" in result.stdout and "1 kept, 1 broken" in result.stdout, result.stdout[-3000:]


def test_function_local_imports_of_the_lab_say_why():
    """An import of the lab's own code inside a function hides a dependency from the
    module's import list; where one is needed (a heavy library, an environment that lacks
    a stage's libraries), a comment on its line or the line above says why."""
    unexplained = []
    for package in [*PACKAGES, "benchmarks"]:  # the benchmarks are not a layer, but the same rule holds
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.col_offset == 0:
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if not any(name.split(".")[0] in PACKAGES for name in names) and not getattr(node, "level", 0):
                    continue
                if not _explained(lines, node.lineno - 1):
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "\n".join(unexplained)


def _explained(lines: list[str], index: int) -> bool:
    """A comment on the import's line, or on the line above the run of imports it is in."""
    if "#" in lines[index]:
        return True
    index -= 1
    while index >= 0 and lines[index].strip().startswith(("from ", "import ")):
        index -= 1
    return index >= 0 and lines[index].strip().startswith("#")
