"""A small atlas for the app, browser and notebook tests, built once per test run and shared by xdist workers."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

APP_ATLAS_N = 240
APP_ATLAS_SEED = 7


def build_app_atlas(uri: str, n: int = APP_ATLAS_N, seed: int = APP_ATLAS_SEED) -> None:
    """What `python -m embeddings demo --n N` leaves: demo objects, builtin vectors, index, maps, anomalies, clusters."""
    from embeddings.demo.build import build_demo
    from embeddings.encoders.builtin import DEFAULT_WEIGHTS
    from embeddings.pipeline import prepare_atlas

    atlas = build_demo(uri, n=n, seed=seed, workers=1, progress=False)
    prepare_atlas(atlas, workers=0, progress=False, random_init=not DEFAULT_WEIGHTS.is_file(), say=lambda _: None)


def shared_app_atlas(factory: pytest.TempPathFactory, n: int = APP_ATLAS_N) -> str:
    """The path of the small atlas; the first worker to ask builds it, the others wait on a file lock."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by all workers of this run
    target = base / f"app-atlas-{n}"
    with open(base / f"app-atlas-{n}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            build_app_atlas(str(target), n)
            (target / ".complete").touch()
    return str(target)


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REPO = Path(__file__).resolve().parent.parent
