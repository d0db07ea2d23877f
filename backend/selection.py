"""Named selections of objects (a tag, an id list, a cluster, the top anomalies) as frames ready to export.

Each returns a frame with `object_id` first and the column that explains the selection (tag and note,
cluster and rank, anomaly score); `backend.export.selection_table` joins the catalogue onto it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from backend import anomaly, rare, tags
from backend.find import ids_known
from backend.store import Atlas, AtlasError


def by_tag(atlas: Atlas, tag: str) -> pd.DataFrame:
    """Objects currently carrying `tag`, with the tag's note, author and time."""
    cur = tags.current_tags(atlas, tag)
    if cur.empty:
        raise AtlasError(f"no object carries the tag {tag!r}; tags in this atlas: {', '.join(tags.tag_counts(atlas).index) or 'none'}")
    return cur[["object_id", "tag", "note", "author", "created_at"]].reset_index(drop=True)


def read_ids_file(path: str | Path) -> list[str]:
    """Object ids from a text file (one per line, `#` comments) or a CSV with an `object_id` column."""
    path = Path(path)
    if not path.is_file():
        raise AtlasError(f"ids file {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and "," in lines[0]:
        rows = list(csv.DictReader(lines))
        if not rows or "object_id" not in rows[0]:
            raise AtlasError(f"{path.name}: a CSV ids file needs an object_id column (found {', '.join(rows[0]) if rows else 'no rows'})")
        lines = [r["object_id"].strip() for r in rows if r.get("object_id", "").strip()]
    return list(dict.fromkeys(lines))


def by_ids(atlas: Atlas, ids: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The given ids that exist (in order) and the ids the atlas does not have."""
    present, missing = ids_known(atlas, ids)
    if not present:
        raise AtlasError(f"none of the {len(ids)} ids is in atlas {atlas.uri}")
    return pd.DataFrame({"object_id": present}), missing


def parse_space_n(value: str, what: str) -> tuple[str, int]:
    """`SPACE:N` -> (space, N) for --cluster / --top-anomalies."""
    space, sep, number = value.rpartition(":")
    if not sep or not space:
        raise AtlasError(f"{what} takes SPACE:N (e.g. arp-pair-image__image:3), not {value!r}")
    try:
        return space, int(number)
    except ValueError:
        raise AtlasError(f"{what} takes SPACE:N with an integer N, not {value!r}") from None


def by_cluster(atlas: Atlas, space: str, cluster: int) -> pd.DataFrame:
    """The members of one cluster of a space, with the cluster number and rarity rank."""
    frame = rare.cluster_frame(atlas, space)
    if frame is None:
        raise AtlasError(f"space {space} has no clusters yet (run the rare-object clustering first)")
    ids = list(frame.loc[frame["cluster"] == cluster, "object_id"])
    if not ids:
        known = sorted(int(c) for c in set(frame["cluster"]) if c >= 0)
        raise AtlasError(f"space {space} has no cluster {cluster}; clusters are {known[:20]}{' ...' if len(known) > 20 else ''}")
    rows = frame.set_index("object_id").loc[ids]
    out = pd.DataFrame({"object_id": ids, "cluster": cluster})
    if "cluster_rank" in rows.columns:
        out["cluster_rank"] = rows["cluster_rank"].to_numpy()
    return out


def by_top_anomalies(atlas: Atlas, space: str, n: int) -> pd.DataFrame:
    """The n most anomalous objects of a space, most anomalous first, with their blended score and rank."""
    if n < 1:
        raise AtlasError(f"--top-anomalies needs N >= 1, not {n}")
    top = anomaly.top_anomalies(atlas, space, n, columns=())
    out = top[["object_id", "anomaly"]].copy()
    out.insert(1, "anomaly_rank", range(1, len(out) + 1))
    return out
