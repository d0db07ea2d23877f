"""Galleries of object cards (thumbnail, caption, vote / tag / Open buttons) as one local Streamlit component a
gallery (pages/assets/cards.js, no network), in place of ~7 Streamlit elements a card: the Rare page's 30 cards cost a
new tab ~20 ms of browser rendering each on the 2-core box.

Python sends the cards (id, caption, PNG thumbnail as a data URI, current vote); a click on a card's button sends
back one `action`, {kind: 'up'|'down'|'tag'|'open', id}, which the callback keeps under the page's `action_key` for
the page to act on before it draws anything.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

KINDS = ("up", "down", "tag", "open")

_JS = (Path(__file__).parent / "assets" / "cards.js").read_text()
_CSS = """
.arp-cards { display: grid; grid-template-columns: repeat(var(--arp-cards-columns, 6), minmax(0, 1fr)); gap: 1rem;
  font-family: var(--st-font, sans-serif); color: var(--st-text-color, #fafafa); }
@media (max-width: 640px) { .arp-cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.arp-card { display: flex; flex-direction: column; gap: .5rem; min-width: 0; }
.arp-card-img { display: block; width: 100%; aspect-ratio: 1; object-fit: cover; }
.arp-card-blank { background: var(--st-secondary-background-color, rgba(128, 128, 128, .15)); }
.arp-card-caption { font-size: .875rem; line-height: 1.4; overflow-wrap: anywhere; opacity: .6; }
.arp-card-buttons { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: .5rem; }
.arp-card-button { font: inherit; font-size: .875rem; color: inherit; cursor: pointer; min-width: 0;
  background: var(--st-background-color, transparent); border: 1px solid var(--st-border-color, rgba(128, 128, 128, .3));
  border-radius: var(--st-base-radius, .5rem); display: flex; align-items: center; justify-content: center; }
.arp-card-buttons .arp-card-button { width: 100%; max-width: 2.4rem; aspect-ratio: 1; padding: 0; }
.arp-card-open { min-height: 2.4rem; padding: .25rem .75rem; }
.arp-card-button:hover { border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }
.arp-card-button:focus-visible { outline: 2px solid var(--st-primary-color, #ff4b4b); outline-offset: 1px; }
.arp-card-button[aria-pressed="true"] { background: var(--st-primary-color, #ff4b4b); border-color: var(--st-primary-color, #ff4b4b);
  color: #fff; }
"""
_component = st.components.v2.component("arp_cards", js=_JS, css=_CSS, isolate_styles=False)


def card(object_id: str, caption: str, thumbnail: object, vote: str | None = None) -> dict:
    """One card's data: its id, caption (drawn as text), PNG thumbnail (bytes; none: a blank square) and vote
    ('up', 'down' or None)."""
    src = ""
    if isinstance(thumbnail, bytes | bytearray) and thumbnail:
        src = "data:image/png;base64," + base64.b64encode(bytes(thumbnail)).decode("ascii")
    return {"id": str(object_id), "caption": caption, "src": src, "vote": vote}


def frame_cards(frame: pd.DataFrame, caption: Callable[[pd.Series], str],
                vote: Callable[[str], str | None] = lambda _: None) -> list[dict]:
    """A card for each row of a frame with `object_id` and `thumbnail` columns: its caption and vote from the row."""
    return [card(str(row["object_id"]), caption(row), row.get("thumbnail"), vote(str(row["object_id"])))
            for _, row in frame.iterrows()]


def card_gallery(cards: list[dict], *, key: str, action_key: str, columns: int = 6, votes: bool = True) -> None:
    """Draw the cards, `columns` a row (with vote and tag buttons when `votes`, else Open alone); a click on a card's
    button leaves its action in `st.session_state[action_key]` (before the rerun it causes)."""
    _component(key=key, data={"cards": cards, "columns": columns, "votes": votes},
               on_action_change=partial(_keep_action, key, action_key))


def _keep_action(key: str, action_key: str) -> None:
    """Callback: keep the action the gallery under `key` just sent for the page to act on."""
    value = (st.session_state.get(key) or {}).get("action")
    if isinstance(value, dict) and value.get("kind") in KINDS and isinstance(value.get("id"), str):
        st.session_state[action_key] = {"kind": value["kind"], "id": value["id"]}
