"""Standard spectral indices of a galaxy spectrum in its rest frame (the spectrum's counterpart of `morphology`).

The set an SDSS/DESI value-added catalogue gives every galaxy (Balogh et al. 1999; Worthey & Ottaviani
1997; Kauffmann et al. 2003), measured on the stored spectrum at the catalogue redshift. Bands are in
rest-frame Angstrom (the Lick definitions are in air; at these widths the ~1 A vacuum offset does not
matter). Columns written to `objects`:

- `line_d4000n`: narrow 4000 A break, mean F_nu in 4000-4100 over 3850-3950;
- `line_hdelta_a`, `line_hgamma_a`: Balmer absorption EW (A, positive = absorption);
- `line_ew_oii`, `line_ew_hbeta`, `line_ew_oiii`, `line_ew_halpha`, `line_ew_nii`: emission EW of
  [OII] 3727, Hbeta, [OIII] 5007, Halpha and [NII] 6584 (A, positive = emission).

An index is NaN when its bands leave the observed grid or fewer than half their pixels have ivar > 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

Band = tuple[float, float]

# (index band, blue continuum, red continuum) in rest-frame Angstrom.
EW_INDICES: dict[str, tuple[Band, Band, Band, float]] = {
    # name: (band, blue, red, sign): sign +1 reports absorption as positive, -1 emission as positive.
    "line_hdelta_a": ((4083.50, 4122.25), (4041.60, 4079.75), (4128.50, 4161.00), 1.0),
    "line_hgamma_a": ((4319.75, 4363.50), (4283.50, 4319.75), (4367.25, 4419.75), 1.0),
    "line_ew_oii": ((3713.0, 3741.0), (3653.0, 3713.0), (3741.0, 3801.0), -1.0),
    "line_ew_hbeta": ((4851.0, 4871.0), (4815.0, 4845.0), (4880.0, 4930.0), -1.0),
    "line_ew_oiii": ((4998.0, 5018.0), (4978.0, 4998.0), (5018.0, 5038.0), -1.0),
    "line_ew_halpha": ((6554.6, 6574.6), (6483.0, 6513.0), (6623.0, 6653.0), -1.0),
    "line_ew_nii": ((6575.3, 6595.3), (6483.0, 6513.0), (6623.0, 6653.0), -1.0),
}
D4000_BLUE, D4000_RED = (3850.0, 3950.0), (4000.0, 4100.0)
COLUMNS = ("line_d4000n", *EW_INDICES)
MIN_VALID = 0.5  # share of a band's pixels that must have ivar > 0


def _band_mean(rest: np.ndarray, values: np.ndarray, valid: np.ndarray, band: Band) -> float:
    """Mean of `values` over the valid pixels inside `band`; NaN when the band leaves the grid or is mostly masked."""
    lo, hi = band
    if rest[0] > lo or rest[-1] < hi:
        return float("nan")
    inside = (rest >= lo) & (rest < hi)
    good = inside & valid
    if good.sum() < MIN_VALID * max(int(inside.sum()), 1):
        return float("nan")
    return float(values[good].mean())


def _equivalent_width(rest: np.ndarray, flux: np.ndarray, valid: np.ndarray, definition: tuple[Band, Band, Band, float]) -> float:
    """EW of one index against the straight pseudo-continuum through its two side bands' means."""
    band, blue, red, sign = definition
    f_blue, f_red = _band_mean(rest, flux, valid, blue), _band_mean(rest, flux, valid, red)
    if not (np.isfinite(f_blue) and np.isfinite(f_red)):
        return float("nan")
    x_blue, x_red = sum(blue) / 2.0, sum(red) / 2.0
    continuum = f_blue + (f_red - f_blue) * (rest - x_blue) / (x_red - x_blue)
    with np.errstate(divide="ignore", invalid="ignore"):
        deficit = 1.0 - flux / continuum
    ok = valid & (continuum > 0)
    mean_deficit = _band_mean(rest, deficit, ok, band)
    return float(sign * mean_deficit * (band[1] - band[0]))


def measure(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, redshift: float) -> dict[str, float]:
    """Every index of one spectrum (observed-frame `wave` in Angstrom) at `redshift`; NaN where undefined."""
    wave = np.asarray(wave, np.float64)
    flux = np.asarray(flux, np.float64)
    ivar = np.asarray(ivar, np.float64)
    if not (wave.ndim == flux.ndim == ivar.ndim == 1 and len(wave) == len(flux) == len(ivar) >= 2):
        raise ValueError(f"wavelength, flux and ivar must be 1-D of one length (got {len(wave)}, {len(flux)}, {len(ivar)})")
    if not np.isfinite(redshift) or redshift <= -1.0:
        raise ValueError(f"no usable redshift ({redshift})")
    rest = wave / (1.0 + float(redshift))
    valid = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    out = {name: _equivalent_width(rest, flux, valid, definition) for name, definition in EW_INDICES.items()}
    f_nu = flux * rest**2  # F_nu up to a constant
    blue, red = _band_mean(rest, f_nu, valid, D4000_BLUE), _band_mean(rest, f_nu, valid, D4000_RED)
    out["line_d4000n"] = red / blue if np.isfinite(blue) and np.isfinite(red) and blue > 0 else float("nan")
    return {name: out[name] for name in COLUMNS}


NAN_ROW = dict.fromkeys(COLUMNS, float("nan"))


def catalogue(atlas: Any, *, progress: bool = False, say: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Indices of every object with a spectrum and a redshift (object_id + COLUMNS); others get NaN and a message."""
    from embeddings.data import measure_rows

    grids = {name: atlas.wavelength(name) for name in atlas.surveys()}

    def one(row: dict) -> dict[str, float]:
        wave = grids.get(row["survey"])
        if wave is None:
            raise ValueError(f"survey {row['survey']!r} records no wavelength grid")
        z = row.get("redshift")
        return measure(wave, row["spectrum_flux"], row["spectrum_ivar"], float("nan") if z is None else float(z))

    return measure_rows(atlas, ["survey", "redshift", "spectrum_flux", "spectrum_ivar"], "spectrum_flux IS NOT NULL",
                        one, NAN_ROW, label="spectral indices", progress=progress, say=say)


def write_catalogue(atlas: Any, *, progress: bool = False, say: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Measure every object with a spectrum and store the line_* columns in `objects` (sortable and colourable)."""
    frame = catalogue(atlas, progress=progress, say=say)
    if len(frame):
        atlas.update_columns("objects", frame)  # column-wise: the pixels and spectra are not rewritten
    return frame
