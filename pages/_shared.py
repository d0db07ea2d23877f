"""Page plumbing shared by every page: the open atlas (cached), cached frames, small widgets."""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from backend import schema
from backend.config import atlas_allowed, atlas_roots, default_atlas_uri
from backend.spaces import SpaceInfo
from backend.store import Atlas, AtlasError, open_atlas
from pages import _state

LIGHT_COLUMNS = ("object_id", "survey", "ra", "dec", "redshift", "split", "source")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()~$|])")  # inline syntax: emphasis, code, links/images, HTML, maths
_BLOCK_START = re.compile(r"^(\s*\d*)([#>+=.)-])")  # headings, quotes, lists when a value starts a line


def md_escape(value: object) -> str:
    """Data for a Markdown-rendering element (title, caption, label): Markdown syntax escaped, one line."""
    text = _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))
    return _BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


TABLE_CSS = (".arp-table{width:100%;border-collapse:collapse;font-size:.875rem}.arp-table th,.arp-table td{text-align:left;"
             "padding:.3rem .6rem;border-bottom:1px solid rgba(250,250,250,.1);overflow-wrap:anywhere}"
             ".arp-table th{font-weight:400;color:rgba(250,250,250,.6)}.arp-table td.num{text-align:right}"
             ".arp-table.arp-meta th{width:40%}.arp-table.arp-narrow{width:auto;min-width:16rem}")


def cell_text(value: object) -> str:
    """A value for a table cell: whole numbers with thousands separators, other floats to 6 significant digits,
    empty when missing."""
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return ""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{value:.6g}"
    return str(value)


def html_table(frame: pd.DataFrame, *, header: bool = True, row_headers: bool = False, cls: str = "") -> None:
    """A small table (tens of rows) drawn as escaped HTML: names and values are data, never Markdown or HTML.
    st.dataframe's grid costs every new tab ~0.5 s of script on the 2-core box, st.table's Arrow reader ~0.3 s.
    `row_headers`: the first column names each row (a two-column name/value table)."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame.columns]
    head = ("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns) + "</tr></thead>"
            if header else "")

    def row(values: tuple) -> str:
        cells = []
        for i, value in enumerate(values):
            tag = "th" if row_headers and i == 0 else "td"
            attr = ' class="num"' if numeric[i] and tag == "td" else ""
            cells.append(f"<{tag}{attr}>{html.escape(cell_text(value))}</{tag}>")
        return "<tr>" + "".join(cells) + "</tr>"

    body = "".join(row(values) for values in frame.itertuples(index=False, name=None))
    classes = " ".join(["arp-table", *cls.split()])
    st.html(f'<table class="{classes}">{head}<tbody>{body}</tbody></table><style>{TABLE_CSS}</style>')


HTML_TABLE_ROWS = 100  # longer tables get the data grid (scrolling, sorting), worth its cost there


def table(frame: pd.DataFrame) -> None:
    """A table: escaped HTML up to HTML_TABLE_ROWS rows (light for a new tab), the data grid when longer."""
    if len(frame) <= HTML_TABLE_ROWS:
        html_table(frame)
    else:
        st.dataframe(frame, hide_index=True)


def plot_text(value: object) -> str:
    """Data for a Plotly title, legend or label, which read <b>, <a href> and other tags: tags shown as text."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
    return st.session_state.get(_state.ATLAS_URI) or cli_atlas() or default_atlas_uri()


@st.cache_resource(show_spinner=False)
def _open(uri: str) -> Atlas:
    return open_atlas(uri)


def build_command(uri: str) -> str:
    """The command that builds the demo atlas at `uri`."""
    return f"python -m embeddings demo --atlas {uri}"


_IN_FRAME: ContextVar[bool] = ContextVar("arp_in_frame", default=False)
_RUN_VERSIONS: ContextVar[dict[tuple[str, str], int] | None] = ContextVar("arp_run_versions", default=None)


@contextmanager
def app_frame() -> Iterator[None]:
    """Mark the pages run inside it as run by app.py's `st.navigation` (with the sidebar and menu around them);
    table versions are read once per run inside it."""
    token, versions = _IN_FRAME.set(True), _RUN_VERSIONS.set({})
    try:
        yield
    finally:
        _RUN_VERSIONS.reset(versions)
        _IN_FRAME.reset(token)


def ensure_frame() -> None:
    """Run the app around this page when Streamlit ran the page file alone, then stop this run.

    A fresh server treats the `pages/` folder as a legacy multipage app until `st.navigation` has run once, so
    the very first request for e.g. `/galaxy` runs pages/galaxy.py without app.py. Then call app.py's `main`
    (its `st.navigation` routes to the page asked for, inside the frame) and stop the bare run.
    """
    if _IN_FRAME.get():
        return
    from app import main

    main()
    st.stop()


def server_is_local() -> bool:
    """Whether this Streamlit server listens on the loopback interface only."""
    return str(st.get_option("server.address") or "") in LOOPBACK


def get_atlas() -> Atlas:
    """The open atlas; on a missing or unreadable atlas, say how to build one and stop the page."""
    ensure_frame()
    uri = atlas_uri()
    if not server_is_local() and not atlas_allowed(uri, atlas_roots()):
        st.error(f"This server opens only atlases under its configured roots (ARP_ATLAS_ROOTS), not {md_escape(uri)}.")
        st.stop()
    try:
        return _open(uri)
    except Exception as exc:  # noqa: BLE001 - any failure to open is a message, never a traceback
        detail = str(exc) if isinstance(exc, AtlasError) else f"{type(exc).__name__} while opening it"
        st.error(f"Cannot open the atlas at {md_escape(uri)}.\n\n{md_escape(detail)}")
        st.markdown("Build the demo atlas there with:")
        st.code(build_command(uri), language="bash")
        st.markdown("or pick another atlas folder in the sidebar.")
        st.stop()
        raise  # unreachable: st.stop raises


@st.cache_data(show_spinner=False, max_entries=16)
def _spaces(uri: str, version: int, tables: tuple[str, ...]) -> dict[str, SpaceInfo]:
    from backend.spaces import list_spaces

    return list_spaces(_open(uri))


def spaces(atlas: Atlas) -> dict[str, SpaceInfo]:
    """The atlas's embedding spaces by name, cached per metadata version and set of tables."""
    return _spaces(atlas.uri, table_version(atlas, schema.META), tuple(atlas.table_names()))


@st.cache_data(show_spinner=False, max_entries=16)
def _vector_counts(uri: str, tables: tuple[str, ...], versions: tuple[int, ...]) -> dict[str, int]:
    atlas = _open(uri)
    return {table: atlas.count(table) for table in tables}


def vector_counts(atlas: Atlas, tables: Iterable[str]) -> dict[str, int]:
    """Rows of each vectors table, cached per table version."""
    names = tuple(tables)
    return _vector_counts(atlas.uri, names, tuple(table_version(atlas, t) for t in names))


@st.cache_data(show_spinner=False, max_entries=16)
def _tagged_object_count(uri: str, version: int) -> int:
    from backend import tags

    return tags.tagged_object_count(_open(uri))


def tagged_object_count(atlas: Atlas) -> int:
    """How many objects carry a current tag, cached per tags-table version."""
    return _tagged_object_count(atlas.uri, table_version(atlas, schema.TAGS))


def spaces_or_stop(atlas: Atlas) -> list[str]:
    """The atlas's space names; without any, say how to make one and stop the page."""
    names = list(spaces(atlas))
    if not names:
        st.info("No embedding space yet: run an embedding job first (Jobs page).")
        st.stop()
    return names


def table_version(atlas: Atlas, table: str) -> int:
    """The current version of a table (0 when absent): part of cache keys so edits show up. Read once per script run
    (each read opens the table: ~10 ms under load, and a Galaxy run asked six times); every write in a page is
    followed by `st.rerun`, whose run reads the new version."""
    seen = _RUN_VERSIONS.get()
    if seen is None:
        return atlas.version(table)
    key = (atlas.uri, table)
    if key not in seen:
        seen[key] = atlas.version(table)
    return seen[key]


@st.cache_resource(show_spinner=False, max_entries=8)
def _objects(uri: str, columns: tuple[str, ...], version: int) -> pd.DataFrame:
    return _open(uri).objects(list(columns))


@st.cache_data(show_spinner=False, max_entries=16)
def _catalogue_columns(uri: str, version: int) -> list[str]:
    atlas = _open(uri)
    available = set(atlas.columns(schema.OBJECTS))
    return [c for c in dict.fromkeys([*LIGHT_COLUMNS, *atlas.label_columns()]) if c in available]


def catalogue_columns(atlas: Atlas) -> list[str]:
    """The objects' catalogue columns (no pixels or spectra): core position/redshift columns, then labels."""
    return _catalogue_columns(atlas.uri, table_version(atlas, schema.OBJECTS))


def light_objects(atlas: Atlas, extra: Iterable[str] = ()) -> pd.DataFrame:
    """Objects without pixels or spectra (catalogue columns, labels), cached per table version.

    Shared by every session and rerun without a copy (a copy of a 1M-row catalogue costs seconds): read only.
    """
    available = set(atlas.columns(schema.OBJECTS))
    wanted = [c for c in dict.fromkeys([*catalogue_columns(atlas), *extra]) if c in available]
    return _objects(atlas.uri, tuple(wanted), table_version(atlas, schema.OBJECTS))


@st.cache_data(show_spinner=False, max_entries=16)
def _redshift_range(uri: str, version: int) -> tuple[float, float]:
    atlas = _open(uri)
    if "redshift" not in atlas.columns(schema.OBJECTS):
        return 0.0, 1.0
    z = atlas.objects(["redshift"])["redshift"].dropna()
    lo, hi = (float(z.min()), float(z.max())) if len(z) else (0.0, 1.0)
    return lo, max(hi, lo + 1e-3)


def redshift_range(atlas: Atlas) -> tuple[float, float]:
    """The objects' redshift range (lo < hi; 0-1 without redshifts), for range sliders; cached per table version."""
    return _redshift_range(atlas.uri, table_version(atlas, schema.OBJECTS))


@st.cache_data(show_spinner=False, max_entries=16)
def _surveys(uri: str, version: int) -> dict[str, dict]:
    return _open(uri).surveys()


def surveys(atlas: Atlas) -> dict[str, dict]:
    """The atlas's surveys (bands, pixel scale, units), cached per metadata version."""
    return _surveys(atlas.uri, table_version(atlas, schema.META))


@st.cache_resource(show_spinner=False, max_entries=16)
def _wavelength(uri: str, survey: str, version: int) -> np.ndarray | None:
    wave = _open(uri).wavelength(survey)
    if wave is not None:
        wave = np.array(wave, dtype=np.float64)
        wave.flags.writeable = False
    return wave


def wavelength(atlas: Atlas, survey: str) -> np.ndarray | None:
    """A survey's spectrum wavelength grid (shared, read only), cached per metadata version."""
    return _wavelength(atlas.uri, survey, table_version(atlas, schema.META))


def fast_figure(traces: list[dict], layout: dict) -> go.Figure:
    """A Plotly figure from plain trace and layout dicts, not validated property by property: plotly's validation
    cost 0.1-0.2 s a figure on the 2-core box (a Figure, unlike a dict, is not validated again by st.plotly_chart)."""
    template = pio.templates[pio.templates.default]  # what a validated figure gets: Streamlit's plotly theme
    return go.Figure({"data": traces, "layout": {"template": template, **layout}}, _validate=False)


def open_galaxy(object_id: str) -> None:
    """Go to the galaxy page for one object (deep link `?object=ID`)."""
    st.session_state[_state.OBJECT_ID] = object_id
    st.switch_page("pages/galaxy.py", query_params={"object": object_id})


@st.cache_resource(show_spinner=False, max_entries=4)
def _tags_by_object(uri: str, version: int) -> dict[str, tuple[str, ...]]:
    from backend import tags

    current = tags.current_tags(_open(uri))
    return {str(oid): tuple(sorted(group)) for oid, group in current.groupby("object_id", sort=False)["tag"]}


def tags_of(atlas: Atlas, object_id: str) -> list[str]:
    """One object's current tags, from the fold of the whole tag history kept per tags-table version (every tag
    written changes it): opening one galaxy after another reads no tags."""
    return list(_tags_by_object(atlas.uri, table_version(atlas, schema.TAGS)).get(object_id, ()))


TAG_BUTTONS = {"ring": "ring", "merger": "merger", "lens": "lens", "artefact": "artefact",
               "interesting": "interesting", "boring": "not-interesting"}  # label -> tag written
TAG_SHORTCUTS = {"ring": "g", "merger": "m", "lens": "l", "artefact": "a", "interesting": "i", "boring": "b"}


def tag_bar(atlas: Atlas, object_id: str, *, key: str) -> None:
    """Tag buttons (fixed set + free text), the object's current tags, and undo of this session's last tag action."""
    from backend import tags

    undo: list[tuple[str, str, str]] = st.session_state.setdefault(_state.TAG_UNDO, [])
    current = tags_of(atlas, object_id)
    st.markdown("**Tags:** " + (" · ".join(md_escape(t) for t in current) if current else "none"))
    cols = st.columns(len(TAG_BUTTONS) + 2)
    for col, (label, tag) in zip(cols, TAG_BUTTONS.items(), strict=False):
        # the button shows its key and, filled, that the tag is on: no tooltip (six of them cost every Galaxy rerun
        # ~0.1 s of browser script on the loaded 2-core box)
        if col.button(label, key=f"{key}_tag_{label}", width="stretch", type="primary" if tag in current else "secondary",
                      shortcut=TAG_SHORTCUTS[label]):
            if tag in current:
                tags.remove_tag(atlas, object_id, tag)
                undo.append(("remove", object_id, tag))
            else:
                tags.add_tag(atlas, object_id, tag)
                undo.append(("add", object_id, tag))
            st.rerun()
    undo_button(atlas, key=f"{key}_undo", container=cols[-2])
    # any other name in a popover, drawn only when opened: a text box and its button cost every new tab ~0.04 s
    with cols[-1].popover("Other", icon=":material/sell:", width="stretch"):
        free = st.text_input("Free tag", key=f"{key}_free", placeholder="e.g. tidal-stream", label_visibility="collapsed")
        added = st.button("Add tag", key=f"{key}_free_add", width="stretch")
    if added and free.strip():
        try:
            name = tags.tag_name(free)
        except AtlasError as exc:
            st.error(md_escape(exc))
        else:
            tags.add_tag(atlas, object_id, name)
            undo.append(("add", object_id, name))
            st.rerun()


def _objects_text(ids: str | tuple[str, ...]) -> str:
    """One object's id, or how many objects a bulk tag action touched."""
    return ids if isinstance(ids, str) else ids[0] if len(ids) == 1 else f"{len(ids):,} objects"


def undo_button(atlas: Atlas, *, key: str, container: object = st) -> None:
    """Undo this session's last tag action (writes the inverse row; the history keeps both)."""
    from backend import tags

    undo: list[tuple[str, str | tuple[str, ...], str]] = st.session_state.setdefault(_state.TAG_UNDO, [])
    hint = f"undo: {undo[-1][0]} {undo[-1][2]} on {_objects_text(undo[-1][1])}" if undo else "nothing to undo"
    if container.button("Undo", key=key, width="stretch", disabled=not undo, icon=":material/undo:", help=hint):
        action, oid, tag = undo.pop()
        (tags.remove_tag if action == "add" else tags.add_tag)(atlas, oid, tag, note="undo")
        st.rerun()
