"""Run one page file alone in AppTest, without app.py's navigation (for tests of a single page)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from pages import _state
from tests.app_atlas import REPO


def _page_script(path: str) -> None:
    """The AppTest script: execute one page file as Streamlit would, marked as inside the app frame."""
    from pages._shared import app_frame

    with app_frame(), open(path) as handle:
        exec(compile(handle.read(), path, "exec"), {"__name__": "__main__", "__file__": path})  # noqa: S102


def page_alone(page: str, atlas_uri: str, *, timeout_s: float = 90, **query: str) -> AppTest:
    """`page` (e.g. "pages/galaxy.py") run once alone on an atlas, with optional query parameters."""
    at = AppTest.from_function(_page_script, args=(str(REPO / page),), default_timeout=timeout_s)
    at.session_state[_state.ATLAS_URI] = atlas_uri
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()
