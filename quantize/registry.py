"""Methods and backends register themselves when their module is imported."""

from __future__ import annotations

import importlib
import pkgutil


def import_modules(package: str) -> None:
    """Import every module of `package` except its `base` (the interface), once."""
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.name != "base":
            importlib.import_module(f"{package}.{module.name}")
