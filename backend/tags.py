"""Tags: an append-only history (a removal is a row too), folded into the current tags on read."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from backend import schema
from backend.store import Atlas, AtlasError, utcnow, where_eq

INTERESTING, NOT_INTERESTING = "interesting", "not-interesting"
MAX_TAG_CHARS = 64


def _author(author: str | None) -> str:
    return author or os.environ.get("ARP_USER") or os.environ.get("USER") or "anonymous"


def tag_name(tag: str) -> str:
    """A tag as stored: stripped, 1 to MAX_TAG_CHARS characters, no control characters (AtlasError saying why not)."""
    tag = tag.strip()
    if not tag:
        raise AtlasError("a tag needs a non-empty name")
    if len(tag) > MAX_TAG_CHARS:
        raise AtlasError(f"a tag name has at most {MAX_TAG_CHARS} characters (this one has {len(tag)})")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in tag):
        raise AtlasError("a tag name cannot hold control characters (line breaks, tabs, invisible marks)")
    return tag


def _rows(object_ids: Iterable[str], tag: str, action: str, note: str, author: str | None) -> list[dict]:
    tag = tag_name(tag) if action == "add" else tag.strip()  # a tag stored before these rules can still be removed
    if not tag:
        raise AtlasError("a tag needs a non-empty name")
    now, who = utcnow(), _author(author)
    return [{"object_id": str(o), "tag": tag, "action": action, "note": note, "author": who, "created_at": now} for o in object_ids]


def add_tag(atlas: Atlas, object_ids: str | Iterable[str], tag: str, *, note: str = "", author: str | None = None) -> int:
    """Tag one or many objects (appends one row each; safe under concurrent writers)."""
    ids = [object_ids] if isinstance(object_ids, str) else list(object_ids)
    return atlas.append(schema.TAGS, _rows(ids, tag, "add", note, author))


def tag_objects(atlas: Atlas, object_ids: Iterable[str], tag: str, *, note: str = "", author: str | None = None) -> list[str]:
    """Tag those of the objects that do not carry `tag` yet, in one append; their ids (what an undo takes back)."""
    name = tag_name(tag)
    have = set(tagged_ids(atlas, name))
    new = [oid for oid in dict.fromkeys(map(str, object_ids)) if oid not in have]
    if new:
        add_tag(atlas, new, name, note=note, author=author)
    return new


def remove_tag(atlas: Atlas, object_ids: str | Iterable[str], tag: str, *, note: str = "", author: str | None = None) -> int:
    """Remove a tag (appends a `remove` row; the history keeps both)."""
    ids = [object_ids] if isinstance(object_ids, str) else list(object_ids)
    return atlas.append(schema.TAGS, _rows(ids, tag, "remove", note, author))


def history(atlas: Atlas, object_id: str | None = None) -> pd.DataFrame:
    """Every tag row ever written (optionally for one object), oldest first."""
    cols = [f.name for f in schema.TAGS_SCHEMA]
    if atlas.count(schema.TAGS) == 0:
        return pd.DataFrame(columns=cols)
    frame = atlas.scan(schema.TAGS, where=None if object_id is None else where_eq("object_id", object_id))
    frame["_order"] = np.arange(len(frame))
    return frame.sort_values(["created_at", "_order"]).drop(columns="_order").reset_index(drop=True)


def current_tags(atlas: Atlas, tag: str | None = None) -> pd.DataFrame:
    """The fold of the history: one row per (object_id, tag) whose last action is `add`, with its note/author/time."""
    hist = history(atlas)
    if tag is not None:
        hist = hist[hist["tag"] == tag]
    last = hist.groupby(["object_id", "tag"], sort=False).tail(1)
    return last[last["action"] == "add"].drop(columns="action").reset_index(drop=True)


def tags_of(atlas: Atlas, object_id: str) -> list[str]:
    """Current tags of one object, sorted."""
    hist = history(atlas, object_id)
    last = hist.groupby("tag").tail(1)
    return sorted(last.loc[last["action"] == "add", "tag"])


def tag_counts(atlas: Atlas) -> pd.Series:
    """How many objects carry each current tag."""
    return current_tags(atlas).groupby("tag").size().sort_values(ascending=False)


def tagged_object_count(atlas: Atlas) -> int:
    """How many distinct objects carry at least one current tag (not the number of tag rows written)."""
    return int(current_tags(atlas)["object_id"].nunique())


def tagged_ids(atlas: Atlas, tag: str) -> list[str]:
    """Ids of objects currently carrying `tag`."""
    return list(current_tags(atlas, tag)["object_id"])


def tagged_objects(atlas: Atlas, tag: str | None = None, columns: Iterable[str] = ("ra", "dec", "redshift", "survey")) -> pd.DataFrame:
    """Currently tagged objects with their catalogue columns (one row per object and tag)."""
    cur = current_tags(atlas, tag)
    meta = atlas.get_objects(list(dict.fromkeys(cur["object_id"])), list(columns))
    return cur.merge(meta, on="object_id", how="left")[["object_id", *columns, "tag", "note", "author", "created_at"]]


def export_tagged(atlas: Atlas, path: str | Path, tag: str | None = None, fmt: str | None = None) -> Path:
    """Write tagged objects (ra/dec in degrees) as CSV, FITS or VOTable via astropy.table; returns the path."""
    from backend import export

    fmt = export.format_for(path, fmt)
    table = export.frame_to_table(tagged_objects(atlas, tag), name=f"tag {tag}" if tag else "tagged", atlas_uri=atlas.uri)
    return export.write_table(table, path, fmt)
