"""The load-test atlas: jittered copies of a source atlas, vectors near the source's, pixels on a subset only."""

from __future__ import annotations

import numpy as np
import pytest

from backend import schema
from backend.neighbours import neighbours
from backend.spaces import SpaceInfo, read_vectors, register_space, write_vectors
from backend.store import AtlasError, open_atlas
from embeddings.scale import JITTER_DEG, build_scale_atlas
from tests.test_embed_job import synthetic_atlas

SPACE = SpaceInfo("toy", "image", 16, "rev", "v1")


def test_scale_atlas_copies_rows_with_jitter_and_perturbed_vectors(tmp_path):
    src = synthetic_atlas(tmp_path / "src", 40, size=16, spectra=True)
    rng = np.random.default_rng(3)
    ids = list(src.objects(["object_id"])["object_id"])
    base = rng.normal(size=(40, 16)).astype(np.float32)
    register_space(src, SPACE)
    write_vectors(src, SPACE, ids, base)
    out = build_scale_atlas(str(tmp_path / "big"), str(tmp_path / "src"), n=1000, pixels_every=50, say=lambda _: None)

    assert out.count(schema.OBJECTS) == 1000 and out.count(SPACE.table) == 1000
    assert "not for science" in out.get_meta("scale_test")["note"]
    cat = out.objects(["object_id", "ra", "dec", "redshift", "source"]).set_index("object_id")
    orig = src.objects(["object_id", "ra", "dec"]).set_index("object_id")
    copied_from = cat["source"].str.removeprefix("scale copy of ")
    assert copied_from.isin(orig.index).all() and copied_from.nunique() > 30
    d_dec = (cat["dec"] - orig.loc[copied_from, "dec"].to_numpy()).abs()
    assert (d_dec <= JITTER_DEG + 1e-9).all() and d_dec.max() > 0.1

    got_ids, vecs = read_vectors(out, SPACE.name)
    src_unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    sources = copied_from.loc[got_ids].map({o: i for i, o in enumerate(ids)}).to_numpy()
    cos = np.sum(vecs * src_unit[sources], axis=1)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4) and cos.min() > 0.9 and cos.max() < 1 - 1e-6

    with_pixels = out.objects(["object_id"], where="image IS NOT NULL")
    assert len(with_pixels) == 20 and out.count(schema.OBJECTS, "spectrum_flux IS NOT NULL") == 20
    near = neighbours(out, "scale-00000001", SPACE.name, k=5)
    assert len(near) == 5

    with pytest.raises(AtlasError, match="already has objects"):
        build_scale_atlas(str(tmp_path / "big"), str(tmp_path / "src"), n=10, say=lambda _: None)
    assert open_atlas(str(tmp_path / "big")).count(schema.OBJECTS) == 1000
