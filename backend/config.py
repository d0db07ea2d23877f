"""Where atlases live: the repo's ignored data folder by default, `ARP_ATLAS` to override (a folder or s3:// URI)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DEFAULT_ATLAS = DATA_DIR / "atlases" / "sdss10k"

# Standard AWS variables -> Lance object-store option names (read at connect time, never stored or logged).
_AWS_OPTIONS = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_REGION": "aws_region",
    "AWS_ENDPOINT_URL": "aws_endpoint",
}


def default_atlas_uri() -> str:
    """The atlas the app and CLI open when none is named: `$ARP_ATLAS` or the demo folder."""
    return os.environ.get("ARP_ATLAS") or str(DEFAULT_ATLAS)


def atlas_roots() -> list[str]:
    """Where a server reachable from other machines may open atlases: `$ARP_ATLAS_ROOTS` (folders or URI
    prefixes separated by os.pathsep), else the folder holding the default atlas."""
    configured = [r for r in os.environ.get("ARP_ATLAS_ROOTS", "").split(os.pathsep) if r.strip()]
    return configured or [str(Path(default_atlas_uri()).parent) if not is_remote(default_atlas_uri()) else default_atlas_uri()]


def atlas_allowed(uri: str, roots: list[str]) -> bool:
    """Whether an atlas URI lies inside one of `roots` (a folder after resolving links, or a URI prefix)."""
    for root in roots:
        if is_remote(root) or is_remote(uri):
            if is_remote(root) and is_remote(uri) and (uri.rstrip("/") + "/").startswith(root.rstrip("/") + "/"):
                return True
            continue
        try:
            Path(uri).resolve().relative_to(Path(root).resolve())
        except (ValueError, OSError):
            continue
        return True
    return False


def is_remote(uri: str) -> bool:
    """Whether an atlas URI names object storage (s3://, gs://, az://...) rather than a local folder."""
    return "://" in str(uri) and not str(uri).startswith("file://")


def storage_options(uri: str) -> dict[str, str] | None:
    """LanceDB/Lance storage options for an s3:// atlas, from the standard AWS environment variables.

    `AWS_DEFAULT_REGION` stands in for `AWS_REGION`; an `http://` endpoint (MinIO, moto, a local gateway)
    turns on `allow_http`. Nothing here is written to the atlas: each process reads its own environment.
    """
    if not str(uri).startswith(("s3://", "s3a://")):
        return None
    env = dict(os.environ)
    if "AWS_REGION" not in env and env.get("AWS_DEFAULT_REGION"):
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"]
    options = {opt: env[var] for var, opt in _AWS_OPTIONS.items() if env.get(var)}
    if options.get("aws_endpoint", "").startswith("http://"):
        options["allow_http"] = "true"
    return options
