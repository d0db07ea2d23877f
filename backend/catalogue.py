"""Summaries of the objects catalogue for overview pages: where the objects came from."""

from __future__ import annotations

import pandas as pd


def source_name(source: object) -> str:
    """The file or service an object came from, without its row (`kcorrect:x.fits#12` -> `kcorrect:x.fits`)."""
    if source is None or (isinstance(source, float) and pd.isna(source)):
        return "(unknown)"
    return str(source).split("#", 1)[0] or "(unknown)"


def sources(catalogue: pd.DataFrame) -> pd.DataFrame:
    """One row per survey and source file: objects, redshift range, and the RA/Dec box they cover."""
    if catalogue.empty:
        return pd.DataFrame(columns=["survey", "source", "objects"])
    frame = catalogue.assign(source=catalogue.get("source", pd.Series(index=catalogue.index, dtype=object)).map(source_name))
    frame["survey"] = frame["survey"].fillna("(none)")
    agg = {"objects": ("object_id", "size")}
    for col in ("redshift", "ra", "dec"):
        if col in frame.columns:
            agg[f"{col}_min"] = (col, "min")
            agg[f"{col}_max"] = (col, "max")
    return frame.groupby(["survey", "source"], dropna=False).agg(**agg).reset_index().sort_values("objects", ascending=False)
