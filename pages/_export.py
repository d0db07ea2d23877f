"""Take a selection away: download as CSV / FITS / VOTable, or send it to TOPCAT / Aladin over SAMP."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from backend import export, samp
from backend.store import Atlas, AtlasError
from pages._shared import md_escape


def _payload(atlas: Atlas, frame: pd.DataFrame, name: str, fmt: str) -> Callable[[], bytes]:
    """The table's bytes, made only when the download button is clicked (off the page's script run)."""
    return lambda: export.table_bytes(export.selection_table(atlas, frame, name=name), fmt)


def export_panel(atlas: Atlas, selection: pd.DataFrame, *, name: str, key: str) -> None:
    """Format picker, download button and 'Send to TOPCAT/Aladin' for a selection (object_id + optional columns)."""
    if selection.empty:
        return
    keep = [c for c in selection.columns if c not in ("thumbnail", "image", "spectrum_flux", "spectrum_ivar")]
    frame = selection[keep].drop_duplicates("object_id")
    ids = tuple(frame["object_id"].astype(str))
    cols = st.columns([2, 2, 2])
    fmt = cols[0].segmented_control("Format", list(export.FORMATS), default="votable", key=f"{key}_fmt",
                                    label_visibility="collapsed") or "votable"
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "selection"
    cols[1].download_button(
        f"Download {len(ids):,} ({fmt})", _payload(atlas, frame, name, fmt), file_name=f"arp_{stem}{export.SUFFIXES[fmt]}",
        mime=export.MIME[fmt], key=f"{key}_download", icon=":material/download:", on_click="ignore",
    )
    if cols[2].button("Send to TOPCAT/Aladin", key=f"{key}_samp", icon=":material/send:",
                      help="Broadcasts the table over SAMP (table.load.votable) to TOPCAT, Aladin or any SAMP client."):
        try:
            samp.send_table(export.selection_table(atlas, frame, name=name), name)
            st.toast(md_escape(f"Sent {len(ids):,} objects to the SAMP hub ({name})."), icon=":material/send:")
        except AtlasError as exc:
            st.warning(md_escape(exc), icon=":material/portable_wifi_off:")
