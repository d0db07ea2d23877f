"""`fetch`: download Legacy Survey g,r,z cutouts (CDS hips2fits) and SDSS spectra for targets into a disk cache,
then ingest from the cache. Rate-limited, retried with exponential backoff, resumable (cached targets are skipped)."""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from . import report as R
from .catalog import DEC_NAMES, ID_NAMES, RA_NAMES, _find, position_id
from .run import run_ingest
from .safety import sanitize_filename

HIPS_TEMPLATE = "CDS/P/DESI-Legacy-Surveys/DR10/{band}"
PIXEL_SCALE = 0.262


class NetworkError(RuntimeError):
    """The archives cannot be reached at all (no network); nothing more can be fetched now."""


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, requests.exceptions.ConnectionError | socket.gaierror | ConnectionError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("name or service not known", "failed to establish", "network is unreachable",
                                   "temporary failure in name resolution", "max retries exceeded"))


@dataclass
class FetchReport:
    """What fetch did per target and what the ingests that followed did."""

    targets: int = 0
    images_fetched: int = 0
    spectra_fetched: int = 0
    cached: int = 0
    no_spectrum: int = 0
    failed: list[list[str]] = field(default_factory=list)
    ingests: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable lines for the CLI."""
        head = (f"fetch: {self.targets} targets, {self.images_fetched} cutouts and {self.spectra_fetched} spectra "
                f"downloaded, {self.cached} already cached, {self.no_spectrum} without SDSS spectrum, "
                f"{len(self.failed)} failed")
        lines = [head] + [f"  failed {key}: {why}" for key, why in self.failed[:10]]
        return "\n".join(lines)


class Fetcher:
    """Polite downloader: at most `rate` requests per second, `retries` attempts with exponential backoff."""

    def __init__(self, cache: Path, *, bands: tuple[str, ...] = ("g", "r", "z"), size: int = 152, rate: float = 2.0,
                 retries: int = 4, backoff: float = 1.0, hips_template: str = HIPS_TEMPLATE, radius_arcsec: float = 2.0,
                 data_release: int = 17, sleep: Callable[[float], None] = time.sleep) -> None:
        self.images, self.spectra = cache / "images", cache / "spectra"
        self.images.mkdir(parents=True, exist_ok=True)
        self.spectra.mkdir(parents=True, exist_ok=True)
        self.bands, self.size, self.rate = bands, size, rate
        self.retries, self.backoff, self.template = retries, backoff, hips_template
        self.radius, self.data_release, self.sleep = radius_arcsec, data_release, sleep
        self._last = 0.0

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        for attempt in range(self.retries):
            wait = self._last + (1.0 / self.rate if self.rate > 0 else 0.0) - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            self._last = time.monotonic()
            try:
                return action()
            except Exception as exc:  # astroquery/requests raise many types; all are retried
                if attempt == self.retries - 1:
                    if _is_connection_error(exc):
                        raise NetworkError(f"no network: cannot reach the archive for {what} ({type(exc).__name__}); "
                                           "cached targets are kept, rerun fetch when online") from None
                    raise
                self.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def cutouts(self, key: str, ra: float, dec: float) -> int:
        """Fetch missing band cutouts <key>_<band>.fits; returns how many were downloaded."""
        from astropy import units as u
        from astropy.coordinates import Angle, Latitude, Longitude
        from astroquery.hips2fits import hips2fits

        done = 0
        for band in self.bands:
            out = self.images / f"{key}_{band}.fits"
            if out.exists():
                continue
            hdul = self._call(f"{key} {band} cutout", functools.partial(
                hips2fits.query, hips=self.template.format(band=band), width=self.size, height=self.size,
                projection="TAN", ra=Longitude(ra * u.deg), dec=Latitude(dec * u.deg),
                fov=Angle(self.size * PIXEL_SCALE * u.arcsec), format="fits"))
            hdul[0].header["BAND"] = band
            _atomic_write(hdul, out)
            done += 1
        return done

    def spectrum(self, key: str, ra: float, dec: float) -> int | None:
        """Fetch the SDSS spectrum at the position into <key>.fits (None when SDSS has none; remembered)."""
        from astropy import units as u
        from astropy.coordinates import SkyCoord
        from astroquery.sdss import SDSS

        out, none = self.spectra / f"{key}.fits", self.spectra / f"{key}.none"
        if out.exists() or none.exists():
            return 0
        found = self._call(f"{key} SDSS spectrum", lambda: SDSS.get_spectra(
            coordinates=SkyCoord(ra * u.deg, dec * u.deg), radius=self.radius * u.arcsec,
            data_release=self.data_release, cache=False, show_progress=False))
        if not found:
            none.write_text("no SDSS spectrum within the search radius\n")
            return None
        _atomic_write(found[0], out)
        return 1


def _atomic_write(hdul: Any, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.part")
    hdul.writeto(tmp, overwrite=True)
    tmp.replace(out)


def read_targets(path: Path) -> tuple[pd.DataFrame, list[list[str]]]:
    """Targets CSV -> (frame with key, ra, dec; [row, reason] of targets without a usable position).

    The key is the id column if any, else a J-name from the position.
    """
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise R.SourceError(f"{path}: not a readable CSV file ({str(exc)[:120]})") from None
    cols = list(frame.columns)
    ra_col, dec_col, id_col = _find(cols, RA_NAMES), _find(cols, DEC_NAMES), _find(cols, ID_NAMES + ("id", "name"))
    if ra_col is None or dec_col is None:
        raise R.SourceError(f"{path}: targets need ra and dec columns (found: {', '.join(cols[:20])})")
    ra, dec = pd.to_numeric(frame[ra_col], errors="coerce"), pd.to_numeric(frame[dec_col], errors="coerce")
    ok = ra.between(0, 360) & dec.between(-90, 90)
    bad = [[f"{path.name}:row {i + 1}", f"{R.BAD_POSITION}: ra={frame[ra_col][i]!r}, dec={frame[dec_col][i]!r}"]
           for i in frame.index[~ok]]
    keys = [sanitize_filename(str(frame[id_col][i])) if id_col else position_id(ra[i], dec[i]) for i in frame.index[ok]]
    return pd.DataFrame({"key": keys, "ra": ra[ok].to_numpy(), "dec": dec[ok].to_numpy()}), bad


def run_fetch(atlas_uri: str, targets: str | Path, cache: str | Path, *, spectra: bool = True, progress: bool = True,
              match_radius: float = 1.0, **fetch_options: Any) -> FetchReport:
    """Download what is missing from the cache for each target, then ingest cutouts and spectra (one object each)."""
    table, bad = read_targets(Path(targets))
    fetcher = Fetcher(Path(cache), **fetch_options)
    report = FetchReport(targets=len(table) + len(bad), failed=bad)
    bar = tqdm(table.itertuples(index=False), total=len(table), disable=not progress, desc="fetch", leave=False)
    for row in bar:
        try:
            got = fetcher.cutouts(row.key, row.ra, row.dec)
            spec = fetcher.spectrum(row.key, row.ra, row.dec) if spectra else 0
        except NetworkError:
            raise
        except Exception as exc:  # one target failing (HTTP error after retries) does not stop the others
            report.failed.append([row.key, f"{type(exc).__name__}: {str(exc)[:160]}"])
            continue
        report.images_fetched += got
        report.spectra_fetched += spec or 0
        report.no_spectrum += spec is None
        report.cached += got == 0 and not spec
    if any(fetcher.images.glob("*.fits")):
        report.ingests.append(run_ingest(fetcher.images, atlas_uri, survey="legacysurvey", progress=progress,
                                         match_radius=match_radius).to_dict())
    if spectra and any(fetcher.spectra.glob("*.fits")):
        report.ingests.append(run_ingest(fetcher.spectra, atlas_uri, survey="sdss", progress=progress,
                                         match_radius=match_radius).to_dict())
    return report
