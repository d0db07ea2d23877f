"""Links out to the archives astronomers check an object in, and coordinates written the ways they read them."""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np

LEGACY_VIEWER = "https://www.legacysurvey.org/viewer"
SKYSERVER_NAVI = "https://skyserver.sdss.org/dr18/VisualTools/navi"
NED_CONE = "https://ned.ipac.caltech.edu/conesearch"
SIMBAD_COO = "https://simbad.cds.unistra.fr/simbad/sim-coo"


def degrees_text(ra: float, dec: float) -> str:
    """RA and Dec in degrees to 1e-6 deg (3.6 milliarcsec), e.g. `226.442734 +12.355612`."""
    return f"{float(ra):.6f} {float(dec):+.6f}"


def sexagesimal_text(ra: float, dec: float) -> str:
    """RA in hours and Dec in degrees, sexagesimal (ICRS), e.g. `15:05:46.256 +12:21:20.20`."""
    from astropy import units as u
    from astropy.coordinates import Angle

    ra_text = Angle(float(ra), u.deg).to_string(unit=u.hourangle, sep=":", precision=3, pad=True)
    dec_text = Angle(float(dec), u.deg).to_string(unit=u.deg, sep=":", precision=2, pad=True, alwayssign=True)
    return f"{ra_text} {dec_text}"


def is_sdss(survey: str | None) -> bool:
    """Whether SDSS SkyServer covers this survey's objects (SDSS surveys and the SDSS-based demo)."""
    return bool(survey) and str(survey).lower().startswith("sdss")


def legacy_viewer(ra: float, dec: float, zoom: int = 16) -> str:
    """The Legacy Survey sky viewer centred on (ra, dec), DR10 images, with a marker."""
    return f"{LEGACY_VIEWER}?" + urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "layer": "ls-dr10", "zoom": zoom, "mark": f"{ra:.6f},{dec:.6f}"})


def skyserver(ra: float, dec: float) -> str:
    """SDSS SkyServer's navigate tool (DR18) at (ra, dec)."""
    return f"{SKYSERVER_NAVI}?" + urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "scale": "0.2"})


def ned(ra: float, dec: float, radius_arcmin: float = 0.25) -> str:
    """NED's near-position search around (ra, dec)."""
    params = {"search_type": "Near Position Search", "in_csys": "Equatorial", "in_equinox": "J2000",
              "ra": f"{ra:.6f}d", "dec": f"{dec:+.6f}d", "radius": f"{radius_arcmin:g}"}
    return f"{NED_CONE}?" + urlencode(params)


def simbad(ra: float, dec: float, radius_arcsec: float = 10.0) -> str:
    """SIMBAD's coordinate query around (ra, dec) in ICRS."""
    params = {"Coord": f"{ra:.6f} {dec:+.6f}", "CooFrame": "ICRS", "Radius": f"{radius_arcsec:g}", "Radius.unit": "arcsec"}
    return f"{SIMBAD_COO}?" + urlencode(params)


def links_for(ra: float, dec: float, survey: str | None = None) -> dict[str, str]:
    """Archive name -> URL at the object's position (SkyServer only for SDSS objects); empty without a position."""
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec)):
        return {}
    out = {"Legacy Survey viewer": legacy_viewer(ra, dec)}
    if is_sdss(survey):
        out["SDSS SkyServer"] = skyserver(ra, dec)
    out["NED"] = ned(ra, dec)
    out["SIMBAD"] = simbad(ra, dec)
    return out
