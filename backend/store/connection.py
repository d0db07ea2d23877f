"""Opening an atlas's LanceDB database: the folder checks and the connection."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from backend.store.rest_client_import import defer_rest_client_init

os.environ.setdefault("LANCEDB_LOG", "error")  # Lance's 'no existing dataset, will be created' notices are noise
defer_rest_client_init()

import lancedb  # noqa: E402

from backend import schema  # noqa: E402
from backend.config import is_remote, storage_options  # noqa: E402
from backend.store.errors import AtlasError, AtlasNotFoundError  # noqa: E402


def check_folder(path: Path, create: bool) -> None:
    """A local atlas is a folder of `*.lance` tables; refuse files and folders holding anything else."""
    if path.exists() and not path.is_dir():
        raise AtlasError(f"{path} is a file, not an atlas folder")
    if not path.is_dir():
        if not create:
            raise AtlasNotFoundError(
                f"no atlas at {path}: build the demo with `python -m embeddings demo --atlas {path}` "
                "or ingest data with `python -m embeddings ingest SOURCE --atlas DIR`"
            )
        path.mkdir(parents=True)
        return
    if create and not (path / f"{schema.META}.lance").is_dir():
        foreign = sorted(p.name for p in path.iterdir() if not p.name.endswith(".lance"))
        if foreign:
            raise AtlasError(
                f"{path} exists and is not an Arp atlas (it holds {', '.join(foreign[:3])}"
                f"{'...' if len(foreign) > 3 else ''}); give a new or empty folder for a new atlas"
            )


def connect(uri: str, create: bool) -> Any:
    """A LanceDB connection to the atlas at `uri` (a local folder is checked, and made when `create`)."""
    if not is_remote(uri):
        check_folder(Path(uri), create)
    return lancedb.connect(uri, read_consistency_interval=timedelta(0), storage_options=storage_options(uri))
