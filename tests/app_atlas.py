"""A small atlas for the app, browser and notebook tests, built once per test run and shared by xdist workers."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

APP_ATLAS_N = 240
APP_ATLAS_SEED = 7


def build_app_atlas(uri: str, n: int = APP_ATLAS_N, seed: int = APP_ATLAS_SEED) -> None:
    """Demo survey objects, builtin image+spectrum vectors and their maps: what `python -m embeddings demo` leaves."""
    import numpy as np

    from backend.imaging import thumbnail_png
    from backend.spaces import SpaceInfo, register_space, write_vectors
    from backend.spectra import desi_wavelength
    from backend.store import open_atlas

    rng = np.random.default_rng(seed)
    atlas = open_atlas(uri, create=True)
    wave = desi_wavelength()
    atlas.register_survey("sdss10k", bands=["g", "r", "z"], pixel_scale=0.262, image_shape=[3, 32, 32], wavelength=wave)
    yy, xx = np.mgrid[:32, :32]
    blob = np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 20.0)
    rows = []
    for i in range(n):
        img = (rng.normal(0, 0.01, (3, 32, 32)) + blob[None] * np.array([0.5, 1.0, 1.5])[:, None, None]).astype("f4")
        flux = (1 + 0.1 * rng.normal(size=wave.size)).astype("f4")
        rows.append(
            dict(object_id=f"obj{i:04d}", survey="sdss10k", ra=150 + rng.normal(), dec=2 + rng.normal(),
                 redshift=float(rng.uniform(0.02, 0.3)), split=["train", "val", "test"][i % 3], image=img.ravel(),
                 image_shape=[3, 32, 32], spectrum_flux=flux, spectrum_ivar=np.full(wave.size, 100, "f4"),
                 thumbnail=thumbnail_png(img, ["g", "r", "z"], 64), source="test",
                 morphology=["elliptical", "spiral", "irregular"][i % 3], stellar_mass=float(10 + rng.normal()))
        )
    atlas.upsert("objects", rows)
    ids = [r["object_id"] for r in rows]
    base = rng.normal(size=(n, 16)).astype("f4")
    for encoder, modality in (("arp-pair-image", "image"), ("arp-pair-spectrum", "spectrum")):
        info = SpaceInfo(encoder, modality, 16, "test", "v1", "arp-pair")
        register_space(atlas, info)
        write_vectors(atlas, info, ids, base + 0.1 * rng.normal(size=base.shape).astype("f4"))


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
