"""Page plumbing shared by every page: the open atlas (cached), cached frames, small widgets."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import streamlit as st

from backend.config import default_atlas_uri
from backend.store import Atlas, AtlasError, open_atlas

ATLAS_KEY = "atlas_uri"
APP_SCRIPT = Path(__file__).resolve().parent.parent / "app.py"
LIGHT_COLUMNS = ("object_id", "survey", "ra", "dec", "redshift", "split", "source")


def cli_atlas() -> str | None:
    """The `--atlas DIR` given after `streamlit run app.py --`, if any."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--atlas" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--atlas="):
            return arg.split("=", 1)[1]
    return None


def atlas_uri() -> str:
    """The atlas this session looks at: the picker's value, else `--atlas`, else `$ARP_ATLAS`/demo."""
    return st.session_state.get(ATLAS_KEY) or cli_atlas() or default_atlas_uri()


@st.cache_resource(show_spinner=False)
def _open(uri: str) -> Atlas:
    return open_atlas(uri)


def build_command(uri: str) -> str:
    """The command that builds the demo atlas at `uri`."""
    return f"python -m embeddings demo --atlas {uri}"


def ensure_navigation() -> None:
    """Re-run through app.py's st.navigation when a fresh server was first asked for a page URL directly.

    Streamlit treats an app with a pages/ folder as a v1 multipage app until st.navigation runs once, so the
    very first request to e.g. /galaxy would run the page without app.py's sidebar and navigation. Then run
    app.py here (it runs this page through st.navigation, with this run's widget events) and stop this run.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP_SCRIPT), run_name="__main__")
        st.stop()


def get_atlas() -> Atlas:
    """The open atlas; on a missing or unreadable atlas, say how to build one and stop the page."""
    ensure_navigation()
    uri = atlas_uri()
    try:
        return _open(uri)
    except AtlasError as exc:
        st.error(f"Cannot open the atlas at `{uri}`.\n\n{exc}")
        st.markdown("Build the demo atlas there with:")
        st.code(build_command(uri), language="bash")
        st.markdown("or pick another atlas folder in the sidebar.")
        st.stop()
        raise  # unreachable: st.stop raises


def table_version(atlas: Atlas, table: str) -> int:
    """The current version of a table (0 when absent): part of cache keys so edits show up."""
    if not atlas.has_table(table):
        return 0
    return int(atlas.table(table).version)


@st.cache_data(show_spinner=False, max_entries=16)
def _objects(uri: str, columns: tuple[str, ...], version: int) -> pd.DataFrame:
    return _open(uri).objects(list(columns))


def light_objects(atlas: Atlas, extra: Iterable[str] = ()) -> pd.DataFrame:
    """Objects without pixels or spectra (catalogue columns, labels), cached per table version."""
    available = set(atlas.table("objects").schema.names) if atlas.has_table("objects") else set()
    wanted = [c for c in dict.fromkeys([*LIGHT_COLUMNS, *atlas.label_columns(), *extra]) if c in available]
    return _objects(atlas.uri, tuple(wanted), table_version(atlas, "objects"))


def open_galaxy(object_id: str) -> None:
    """Go to the galaxy page for one object (deep link `?object=ID`)."""
    st.session_state["object_id"] = object_id
    st.switch_page("pages/galaxy.py", query_params={"object": object_id})


def thumbnail_grid(frame: pd.DataFrame, *, key: str, columns: int = 6, caption: str = "redshift") -> None:
    """Thumbnails with an Open button each (opens the galaxy page)."""
    if frame.empty:
        st.info("Nothing to show.")
        return
    rows = [frame.iloc[i : i + columns] for i in range(0, len(frame), columns)]
    for r, chunk in enumerate(rows):
        cols = st.columns(columns)
        for col, (_, row) in zip(cols, chunk.iterrows(), strict=False):
            with col:
                thumb = row.get("thumbnail")
                if isinstance(thumb, bytes | bytearray) and thumb:
                    st.image(bytes(thumb), width="stretch")
                label = str(row["object_id"])
                extra = row.get(caption)
                if extra is not None and pd.notna(extra):
                    label += f" · {caption[:1]}={extra:.3f}" if isinstance(extra, float) else f" · {extra}"
                st.caption(label)
                if st.button("Open", key=f"{key}_{r}_{row['object_id']}", width="stretch"):
                    open_galaxy(str(row["object_id"]))


TAG_BUTTONS = {"ring": "ring", "merger": "merger", "lens": "lens", "artefact": "artefact",
               "interesting": "interesting", "boring": "not-interesting"}  # label -> tag written


def tag_bar(atlas: Atlas, object_id: str, *, key: str) -> None:
    """Tag buttons (fixed set + free text), the object's current tags, and undo of this session's last tag action."""
    from backend import tags

    undo: list[tuple[str, str, str]] = st.session_state.setdefault("tag_undo", [])
    current = tags.tags_of(atlas, object_id)
    st.markdown("**Tags:** " + (" ".join(f"`{t}`" for t in current) if current else "none"))
    cols = st.columns(len(TAG_BUTTONS) + 1)
    for col, (label, tag) in zip(cols, TAG_BUTTONS.items(), strict=False):
        if col.button(label, key=f"{key}_tag_{label}", width="stretch", type="primary" if tag in current else "secondary"):
            if tag in current:
                tags.remove_tag(atlas, object_id, tag)
                undo.append(("remove", object_id, tag))
            else:
                tags.add_tag(atlas, object_id, tag)
                undo.append(("add", object_id, tag))
            st.rerun()
    undo_button(atlas, key=f"{key}_undo", container=cols[-1])
    free_cols = st.columns([3, 1])
    free = free_cols[0].text_input("Free tag", key=f"{key}_free", placeholder="e.g. tidal-stream", label_visibility="collapsed")
    if free_cols[1].button("Add tag", key=f"{key}_free_add", width="stretch") and free.strip():
        tags.add_tag(atlas, object_id, free.strip())
        undo.append(("add", object_id, free.strip()))
        st.rerun()


def undo_button(atlas: Atlas, *, key: str, container: object = st) -> None:
    """Undo this session's last tag action (writes the inverse row; the history keeps both)."""
    from backend import tags

    undo: list[tuple[str, str, str]] = st.session_state.setdefault("tag_undo", [])
    hint = f"undo: {undo[-1][0]} {undo[-1][2]} on {undo[-1][1]}" if undo else "nothing to undo"
    if container.button("Undo", key=key, width="stretch", disabled=not undo, icon=":material/undo:", help=hint):
        action, oid, tag = undo.pop()
        (tags.remove_tag if action == "add" else tags.add_tag)(atlas, oid, tag, note="undo")
        st.rerun()
