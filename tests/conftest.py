"""Shared fixtures: fresh atlases in temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LANCEDB_LOG", "error")

from backend.store import Atlas, open_atlas  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def atlas(tmp_path: Path) -> Atlas:
    """An empty atlas in a temporary folder."""
    return open_atlas(tmp_path / "atlas", create=True)
