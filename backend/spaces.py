"""Embedding spaces: `vectors__<encoder>__<modality>` tables with recorded provenance."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from backend import schema
from backend.store import Atlas, AtlasError, MixedSpaceError, utcnow, where_in

SPACE_PREFIX = "space:"  # metadata row per space: space:<name> -> SpaceInfo fields


@dataclass(frozen=True)
class SpaceInfo:
    """Provenance of one embedding space, kept in atlas metadata under `space:<name>`."""

    encoder: str
    modality: str
    dim: int
    weights_revision: str
    preprocess_version: str
    aligned_group: str = ""  # spaces with the same non-empty group share one aligned space
    derived_from: str = ""  # computed from another space of the atlas (backend.shape_space), not by an encoder

    @property
    def name(self) -> str:
        """The space's name, `<encoder>__<modality>` (maps, probes and indexes are keyed by it)."""
        return schema.space_name(self.encoder, self.modality)

    @property
    def table(self) -> str:
        """The vectors table, `vectors__<encoder>__<modality>`."""
        return schema.vectors_table(self.encoder, self.modality)

    def aligned_with(self, other: SpaceInfo) -> bool:
        """Whether a vector of this space means something in `other` (same space, or one contrastive group)."""
        return self.name == other.name or bool(self.aligned_group and self.aligned_group == other.aligned_group)


SpaceRef = str | SpaceInfo  # a space by name (`<encoder>__<modality>`) or as its SpaceInfo


def space_name(space: SpaceRef) -> str:
    """The name of a space given by name or SpaceInfo."""
    return space.name if isinstance(space, SpaceInfo) else space


def space_table(space: SpaceRef) -> str:
    """The vectors table of a space given by name or SpaceInfo (the one place a name is turned into a table)."""
    return space.table if isinstance(space, SpaceInfo) else schema.vectors_table(*schema.parse_space(space))


def get_space(atlas: Atlas, space: SpaceRef) -> SpaceInfo:
    """The SpaceInfo of a space of this atlas; AtlasError naming the spaces there are when it has none such."""
    spaces = list_spaces(atlas)
    name = space_name(space)
    if name not in spaces:
        known = ", ".join(sorted(spaces)) or "none yet: run `python -m embeddings embed`"
        raise AtlasError(f"no space {name!r} in {atlas.uri}; spaces: {known}")
    return spaces[name]


def list_spaces(atlas: Atlas) -> dict[str, SpaceInfo]:
    """All embedding spaces of an atlas, by space name."""
    raw = dict(atlas.get_meta("spaces", {}) or {})  # pre-0.2 layout: one JSON value for every space
    raw.update({key[len(SPACE_PREFIX):]: value for key, value in atlas.meta_items(SPACE_PREFIX).items()})
    return {name: SpaceInfo(**info) for name, info in raw.items() if atlas.has_table(schema.vectors_table(info["encoder"], info["modality"]))}


def register_space(atlas: Atlas, info: SpaceInfo) -> None:
    """Record a space's provenance; refuse to mix another encoder revision into an existing space."""
    old = atlas.get_meta(SPACE_PREFIX + info.name) or (atlas.get_meta("spaces", {}) or {}).get(info.name)
    if old is not None and atlas.count(info.table) > 0:
        for field in ("dim", "weights_revision", "preprocess_version"):
            if old[field] != getattr(info, field):
                raise MixedSpaceError(
                    f"space {info.name} holds vectors with {field}={old[field]!r}; refusing to add "
                    f"{field}={getattr(info, field)!r}. Drop the table {info.table} first to re-embed."
                )
    atlas.set_meta(SPACE_PREFIX + info.name, asdict(info))  # one row per space: concurrent registrations never collide


def replace_space(atlas: Atlas, info: SpaceInfo, object_ids: list[str], vectors: np.ndarray) -> None:
    """Rewrite a derived space whole (its table in one commit) and record its provenance; nothing of the former space
    stays to mix with, so a new dim or revision is no conflict."""
    atlas.replace(info.table, vectors_arrow(info, object_ids, vectors))
    atlas.set_meta(SPACE_PREFIX + info.name, asdict(info))


def vectors_arrow(info: SpaceInfo, object_ids: list[str], vectors: np.ndarray) -> pa.Table:
    """One batch of vectors with their provenance as an Arrow table of the space's schema."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != info.dim or len(object_ids) != len(vectors):
        raise ValueError(f"expected {len(object_ids)} x {info.dim} vectors, got {vectors.shape}")
    n = len(object_ids)
    now = utcnow()
    return pa.table(
        {
            "object_id": pa.array(object_ids, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), info.dim),
            "encoder": pa.array([info.encoder] * n, pa.string()),
            "weights_revision": pa.array([info.weights_revision] * n, pa.string()),
            "preprocess_version": pa.array([info.preprocess_version] * n, pa.string()),
            "created_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=schema.vectors_schema(info.dim),
    )


def write_vectors(atlas: Atlas, info: SpaceInfo, object_ids: list[str], vectors: np.ndarray) -> int:
    """Upsert one batch of vectors (idempotent by object_id) with their provenance."""
    table = vectors_arrow(info, object_ids, vectors)
    return atlas.upsert(info.table, table, create_schema=schema.vectors_schema(info.dim))


def read_vectors(atlas: Atlas, space: SpaceRef, object_ids: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """All (or the given) vectors of a space as (ids, float32 matrix)."""
    if object_ids is not None and not object_ids:
        return [], np.zeros((0, 0), np.float32)
    where = None if object_ids is None else where_in("object_id", object_ids)
    arrow = atlas.scan_arrow(space_table(space), ["object_id", "vector"], where=where)
    ids = arrow.column("object_id").to_pylist()
    vec_col = arrow.column("vector").combine_chunks()
    dim = vec_col.type.list_size
    mat = vec_col.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
    if object_ids is not None:
        order = {oid: i for i, oid in enumerate(ids)}
        keep = [order[o] for o in object_ids if o in order]
        return [ids[i] for i in keep], mat[keep]
    return ids, mat
