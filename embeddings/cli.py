"""Command line: `python -m embeddings demo|ingest|fetch|embed|train-builtin`.

Each command is a thin wrapper: parse options, call the module that does the work, print a
summary. User errors (bad paths, missing weights, no network) print one clear line and exit 2.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from backend.config import default_atlas_uri
from backend.store import AtlasError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Arp embedding-side commands.")

AtlasOpt = typer.Option(None, "--atlas", help="Atlas folder or URI (default: $ARP_ATLAS or data/atlases/sdss10k).")


def _atlas(uri: str | None) -> str:
    return uri or default_atlas_uri()


class UserError(Exception):
    """An error caused by input or environment; printed without a traceback."""


def main() -> None:
    """Run the CLI, turning user errors into one line on stderr and exit code 2."""
    os.environ.setdefault("LANCE_LOG", "error")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except (UserError, AtlasError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


# Commands are added below by the modules that own them (demo, ingest, fetch, embed, train-builtin).
