"""Values with a copy button each, then links out, as one local Streamlit component (~15 KB of script): `st.code`'s
syntax highlighter cost every new tab ~0.9 s on the 2-core box. Values and link names travel as data, drawn as text."""

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
.arp-link { display: inline-flex; align-items: center; gap: .35rem; padding: .55rem .75rem; border-radius: .5rem;
  border: 1px solid rgba(250, 250, 250, .2); color: #fafafa; text-decoration: none; font-size: .875rem;
  white-space: nowrap; }
.arp-link:hover { border-color: #ff4b4b; color: #ff4b4b; }
.arp-link:focus-visible { outline: 2px solid #ff4b4b; outline-offset: 1px; }
"""
_component = st.components.v2.component("arp_copy_text", js=_JS, css=_CSS)


def copy_texts(values: list[str], *, key: str, links: dict[str, str] | None = None) -> None:
    """One read-only box per value, side by side, each with a button that copies it to the clipboard, then a link for
    each (name, http(s) URL) of `links`, opening in a new tab."""
    _component(key=key, data={"values": [str(v) for v in values], "links": [[n, u] for n, u in (links or {}).items()]})
