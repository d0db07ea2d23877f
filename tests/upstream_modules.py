"""Throwaway modules named like upstream's, so test checkpoints pickle objects under upstream class paths."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def upstream_module(name: str) -> Iterator[types.ModuleType]:
    """Register an empty module (and its parents) under `name` for the duration of the block."""
    parts = name.split(".")
    added = [".".join(parts[: i + 1]) for i in range(len(parts)) if ".".join(parts[: i + 1]) not in sys.modules]
    for mod_name in added:
        sys.modules[mod_name] = types.ModuleType(mod_name)
    try:
        yield sys.modules[name]
    finally:
        for mod_name in added:
            sys.modules.pop(mod_name, None)
