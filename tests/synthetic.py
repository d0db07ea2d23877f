"""A small synthetic atlas for backend tests: clustered vectors in an aligned image/spectrum pair."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.spaces import SpaceInfo, register_space, write_vectors
from backend.store import Atlas

IMAGE = SpaceInfo("toy-pair-image", "image", 16, "test-rev", "v1", aligned_group="toy-pair")
SPECTRUM = SpaceInfo("toy-pair-spectrum", "spectrum", 16, "test-rev", "v1", aligned_group="toy-pair")


def build_synthetic(atlas: Atlas, n: int = 400, *, n_rare: int = 12, seed: int = 0) -> pd.DataFrame:
    """Objects in 4 common clusters plus one small far cluster of rare objects; vectors in two aligned spaces."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (5, 16)) * 3.0
    centres[4] = centres[:4].mean(0) + 12.0  # the rare cluster, far from the bulk
    cls = rng.integers(0, 4, n)
    cls[:n_rare] = 4
    rng.shuffle(cls)
    z = np.where(cls == 4, 0.05, 0.05 + 0.1 * cls) + rng.normal(0, 0.01, n)
    latent = centres[cls] + rng.normal(0, 0.6, (n, 16))
    img = latent + rng.normal(0, 0.3, (n, 16))
    spec = latent + rng.normal(0, 0.3, (n, 16))
    ids = [f"obj{i:05d}" for i in range(n)]
    objects = pd.DataFrame(
        {
            "object_id": ids,
            "survey": np.where(np.arange(n) % 2 == 0, "sdss", "desi"),
            "ra": rng.uniform(150, 160, n),
            "dec": rng.uniform(0, 10, n),
            "redshift": np.clip(z, 0.001, None).astype(np.float32),
            "split": np.where(rng.random(n) < 0.75, "train", "test"),
            "morphology": np.array(["spiral", "elliptical", "irregular", "edge-on", "ring"])[cls],
            "is_rare": cls == 4,
            "rare_class": np.where(cls == 4, "ring", ""),
        }
    )
    atlas.upsert("objects", objects)
    for info, vec in ((IMAGE, img), (SPECTRUM, spec)):
        register_space(atlas, info)
        write_vectors(atlas, info, ids, vec.astype(np.float32))
    return objects
