"""A large atlas for load testing (`python -m embeddings scale`): FOR PERFORMANCE WORK, NOT SCIENCE.

Every row is a copy of a random row of a built demo atlas (the source) with a jittered position (within
`JITTER_DEG` degrees), a jittered redshift and its vectors perturbed around the source's real vectors
(Gaussian noise, then renormalised); the thumbnail bytes are the source's, shared; pixels and spectra are
copied only for every `pixels_every`-th row (the rest are null, as for catalogue-only objects). Labels and
ground truth are copied, so nothing measured on this atlas says anything about galaxies.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backend import schema
from backend.spaces import SpaceInfo, list_spaces, register_space, vectors_arrow
from backend.store import Atlas, AtlasError, open_atlas

CHUNK_ROWS = 50_000
JITTER_DEG = 0.5
Z_JITTER = 0.01
VECTOR_NOISE = 0.15  # noise norm relative to the (unit) source vector
PIXEL_COLUMNS = ("image", "image_shape", "spectrum_flux", "spectrum_ivar")
NOTE = ("synthetic load-test atlas built by `python -m embeddings scale` from {source}: jittered copies of its "
        "rows and perturbed copies of its vectors; for performance measurements, not for science")


def build_scale_atlas(
    target: str,
    source: str,
    *,
    n: int = 1_000_000,
    seed: int = 0,
    pixels_every: int = 100,
    index: bool = True,
    say: Callable[[str], None] = print,
) -> Atlas:
    """Write `n` jittered copies of the source atlas's objects and vectors into a new atlas at `target`."""
    src = open_atlas(source)
    spaces = list_spaces(src)
    if not spaces:
        raise AtlasError(f"source atlas {source} has no vectors; build it with `python -m embeddings demo --atlas {source}`")
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    out = open_atlas(target, create=True)
    if out.count(schema.OBJECTS):
        raise AtlasError(f"{target} already has objects; the scale atlas is written once into a new folder or prefix")
    for name, survey in src.surveys().items():
        out.register_survey(name, **{k: v for k, v in survey.items() if k in ("bands", "pixel_scale", "image_shape", "wavelength")})
    out.set_meta("scale_test", {"source": source, "n": n, "seed": seed, "pixels_every": pixels_every,
                                "note": NOTE.format(source=source)})
    scalar = [c for c in src.columns(schema.OBJECTS) if c not in PIXEL_COLUMNS]
    catalogue = src.table(schema.OBJECTS).to_lance().to_table(columns=scalar)
    source_ids = catalogue.column("object_id")
    vectors = {name: _aligned_vectors(src, name, source_ids) for name in spaces}
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for start in range(0, n, CHUNK_ROWS):
        m = min(CHUNK_ROWS, n - start)
        pick = rng.integers(0, catalogue.num_rows, m)
        ids = [f"scale-{i:08d}" for i in range(start, start + m)]
        out.append(schema.OBJECTS, _objects_chunk(src, catalogue, pick, ids, start, pixels_every, rng))
        for name, info in spaces.items():
            if start == 0:
                register_space(out, info)
            out.append(info.table, _vectors_chunk(info, vectors[name][pick], ids, rng),
                       create_schema=schema.vectors_schema(info.dim))
        say(f"scale: {start + m}/{n} objects ({(start + m) / (time.perf_counter() - started):.0f}/s)")
    if index:
        _index(out, list(spaces), say)
    return out


def _aligned_vectors(src: Atlas, space: str, ids: pa.ChunkedArray) -> np.ndarray:
    """The source vectors of a space in the order of `ids` (zeros where an object has none)."""
    from backend.spaces import read_vectors

    have, mat = read_vectors(src, space)
    pos = pc.index_in(ids, value_set=pa.array(have)).to_numpy(zero_copy_only=False)
    out = np.zeros((len(ids), mat.shape[1]), np.float32)
    ok = ~np.isnan(pos.astype(float))
    out[ok] = mat[pos[ok].astype(int)]
    return out


def _objects_chunk(src: Atlas, catalogue: pa.Table, pick: np.ndarray, ids: list[str], start: int,
                   pixels_every: int, rng: np.random.Generator) -> pa.Table:
    rows = catalogue.take(pa.array(pick))
    m = len(ids)
    cols = {name: rows.column(name) for name in rows.column_names}
    cols["object_id"] = pa.array(ids, pa.string())
    dec = np.clip(rows.column("dec").to_numpy(zero_copy_only=False) + rng.uniform(-JITTER_DEG, JITTER_DEG, m), -90, 90)
    cols["ra"] = pa.array((rows.column("ra").to_numpy(zero_copy_only=False) + rng.uniform(-JITTER_DEG, JITTER_DEG, m)) % 360)
    cols["dec"] = pa.array(dec)
    z = rows.column("redshift").to_numpy(zero_copy_only=False).astype(np.float32)
    cols["redshift"] = pa.array(np.clip(z + rng.normal(0, Z_JITTER, m).astype(np.float32), 0, None), pa.float32())
    cols["source"] = pa.array([f"scale copy of {o}" for o in rows.column("object_id").to_pylist()], pa.string())
    table = pa.table(cols)
    with_pixels = np.flatnonzero((np.arange(start, start + m) % max(pixels_every, 1)) == 0)
    present = [c for c in PIXEL_COLUMNS if c in src.columns(schema.OBJECTS)]
    if not len(with_pixels) or not present:
        return table
    src_ids = rows.column("object_id").take(pa.array(with_pixels)).to_pylist()
    pixels = src.get_objects(src_ids, present).drop_duplicates("object_id").set_index("object_id").loc[src_ids]
    for name in present:
        values: list[np.ndarray | None] = [None] * m
        for i, v in zip(with_pixels, pixels[name], strict=True):
            values[i] = None if v is None else np.asarray(v)
        kind = schema.OBJECT_CORE.field(name).type
        table = table.append_column(pa.field(name, kind), pa.array(values, kind))
    return table


def _vectors_chunk(info: SpaceInfo, base: np.ndarray, ids: list[str], rng: np.random.Generator) -> pa.Table:
    noise = rng.normal(0, VECTOR_NOISE / np.sqrt(info.dim), base.shape).astype(np.float32)
    vec = base + noise
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    return vectors_arrow(info, ids, vec)


def _index(atlas: Atlas, spaces: list[str], say: Callable[[str], None]) -> None:
    from backend.index import build_index
    from backend.neighbours import ensure_id_index

    started = time.perf_counter()
    ensure_id_index(atlas, schema.OBJECTS)
    for space in spaces:
        ensure_id_index(atlas, schema.vectors_table(*schema.parse_space(space)))
        plan = build_index(atlas, space)
        say(f"scale: {space} index {plan['type']} built in {plan['build_s']:.0f} s")
    say(f"scale: scalar and vector indexes in {time.perf_counter() - started:.0f} s")
