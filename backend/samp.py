"""Send to TOPCAT / Aladin: broadcast a table (`table.load.votable`) or a position (`coord.pointAt.sky`) over SAMP.

The hub is found the standard way (`$SAMP_HUB`, else `~/.samp`) by pyvo.samp (astropy.samp until astropy 8
deprecated it in pyvo's favour: the same protocol and API). Without a running hub the
calls raise SampUnavailable with a message a user can act on; nothing waits on a hub that is not there.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from astropy.table import Table

from backend.store import AtlasError

CLIENT_NAME = "Arp"
NO_HUB = "No SAMP hub is running: start TOPCAT or Aladin (each runs a hub) on this machine, then send again."
_SENT_DIR = Path(tempfile.gettempdir()) / "arp-samp"


class SampUnavailable(AtlasError):
    """No SAMP hub could be reached."""


def hub_running() -> bool:
    """Whether a SAMP hub answers (reads the lockfile and pings the hub; no waiting when there is none)."""
    from pyvo.samp.errors import SAMPHubError
    from pyvo.samp.lockfile_helpers import get_main_running_hub

    try:
        get_main_running_hub()
    except (SAMPHubError, OSError, KeyError, ValueError):
        return False
    return True


@contextmanager
def _client() -> Iterator[Any]:
    from pyvo.samp import SAMPIntegratedClient
    from pyvo.samp.errors import SAMPClientError, SAMPHubError, SAMPWarning

    if not hub_running():
        raise SampUnavailable(NO_HUB)
    client = SAMPIntegratedClient(name=CLIENT_NAME, description="Arp galaxy atlas", callable=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAMPWarning)
            client.connect()
    except (SAMPHubError, SAMPClientError, OSError) as exc:
        raise SampUnavailable(f"{NO_HUB} ({exc})") from None
    try:
        yield client
    finally:
        client.disconnect()


def send_table(table: Table, name: str) -> Path:
    """Write the table as a VOTable file and broadcast `table.load.votable` to every client; returns the file."""
    _SENT_DIR.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "selection"
    with tempfile.NamedTemporaryFile(prefix=f"{safe}-", suffix=".vot", dir=_SENT_DIR, delete=False) as fh:
        path = Path(fh.name)
    table.write(path, format="votable", overwrite=True)
    with _client() as client:
        client.notify_all({"samp.mtype": "table.load.votable",
                           "samp.params": {"url": path.as_uri(), "name": name, "table-id": safe}})
    return path


def point_at(ra: float, dec: float) -> None:
    """Broadcast `coord.pointAt.sky` (ICRS degrees) so Aladin or TOPCAT's sky view moves to the object."""
    with _client() as client:
        client.notify_all({"samp.mtype": "coord.pointAt.sky", "samp.params": {"ra": f"{float(ra):.7f}", "dec": f"{float(dec):.7f}"}})
