"""A small atlas for the app, browser and notebook tests, built once per test run and shared by xdist workers."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

APP_ATLAS_N = 240
APP_ATLAS_SEED = 7


def build_app_atlas(uri: str, n: int = APP_ATLAS_N, seed: int = APP_ATLAS_SEED) -> None:
    """Demo survey objects, builtin image+spectrum vectors, maps, anomaly scores and rare clusters."""
    from backend import anomaly, maps, rare
    from backend.spaces import list_spaces
    from embeddings.demo.build import build_demo
    from embeddings.encoders.builtin import DEFAULT_WEIGHTS
    from embeddings.encoders.registry import get_encoder
    from embeddings.job import run_embedding

    atlas = build_demo(uri, n=n, seed=seed, workers=1, progress=False)
    for name in ("arp-pair-image", "arp-pair-spectrum"):
        # The committed weights when present; an untrained pair exercises the same pipeline otherwise.
        encoder = get_encoder(name, random_init=not DEFAULT_WEIGHTS.is_file())
        run_embedding(atlas, name, encoder=encoder, device="cpu", batch_size=64, workers=0, progress=False)
    for space in list_spaces(atlas):
        maps.compute_map(atlas, space)
        anomaly.compute_anomalies(atlas, space)
        rare.find_clusters(atlas, space)


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
