"""Home by its own URL (/home): the same overview as the app's root URL.

A page file, so that a fresh server, which routes by the pages/ folder until app.py's st.navigation has run once,
finds /home instead of answering 'Page not found'.
"""

from __future__ import annotations

from app import home
from pages._shared import ensure_frame

ensure_frame()  # alone (a fresh server's first request), run the whole app around this page first
home()
