"""Values with a copy button each (a local Streamlit component, ~15 KB of script), in place of `st.code`, whose
syntax highlighter costs every new tab ~0.9 s on the 2-core box. The values travel as data and are drawn as text."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_JS = (Path(__file__).parent / "assets" / "copy_text.js").read_text()
_CSS = """
.arp-copy { display: flex; gap: 1rem; flex-wrap: wrap; }
.arp-copy-item { flex: 1 1 14rem; display: flex; align-items: center; justify-content: space-between; gap: .5rem;
  padding: .55rem .75rem; border-radius: .5rem; background: rgba(255, 255, 255, .05); }
.arp-copy-item code { font-family: "Source Code Pro", monospace; font-size: .875rem; color: #fafafa;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.arp-copy-item button { border: 0; background: transparent; color: rgba(250, 250, 250, .6); cursor: pointer;
  padding: .15rem; border-radius: .25rem; line-height: 0; }
.arp-copy-item button:hover { color: #fafafa; background: rgba(255, 255, 255, .1); }
.arp-copy-item button[data-copied="yes"] { color: #21c354; }
"""
_component = st.components.v2.component("arp_copy_text", js=_JS, css=_CSS)


def copy_texts(values: list[str], *, key: str) -> None:
    """One read-only box per value, side by side, each with a button that copies it to the clipboard."""
    _component(key=key, data={"values": [str(v) for v in values]})
