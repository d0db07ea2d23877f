"""Where atlases live: the repo's ignored data folder by default, `ARP_ATLAS` to override."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DEFAULT_ATLAS = DATA_DIR / "atlases" / "sdss10k"


def default_atlas_uri() -> str:
    """The atlas the app and CLI open when none is named: `$ARP_ATLAS` or the demo folder."""
    return os.environ.get("ARP_ATLAS") or str(DEFAULT_ATLAS)
