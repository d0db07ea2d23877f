"""Spectral grids shared by the demo survey, ingest and the spectrum encoders."""

from __future__ import annotations

import numpy as np

# DESI-like observed-frame grid (AstroCLIP's spectrum input): 3600-9824 A, 0.8 A pixels, 7781 pixels.
DESI_START, DESI_STEP, DESI_NPIX = 3600.0, 0.8, 7781


def desi_wavelength() -> np.ndarray:
    """The 7781-pixel DESI-like wavelength grid in Angstrom."""
    return DESI_START + DESI_STEP * np.arange(DESI_NPIX, dtype=np.float64)


# Rest-frame vacuum wavelengths (Angstrom) of lines worth marking on a galaxy spectrum.
SPECTRAL_LINES: tuple[tuple[str, float, str], ...] = (
    ("[OII]", 3728.48, "emission"),
    ("CaII K", 3934.78, "absorption"),
    ("CaII H", 3969.59, "absorption"),
    ("Hδ", 4102.89, "absorption"),
    ("G band", 4305.61, "absorption"),
    ("Hγ", 4341.68, "emission"),
    ("Hβ", 4862.68, "emission"),
    ("[OIII]", 4960.30, "emission"),
    ("[OIII]", 5008.24, "emission"),
    ("Mg b", 5176.70, "absorption"),
    ("Na D", 5895.60, "absorption"),
    ("[NII]", 6549.86, "emission"),
    ("Hα", 6564.61, "emission"),
    ("[NII]", 6585.27, "emission"),
    ("[SII]", 6718.29, "emission"),
    ("[SII]", 6732.67, "emission"),
)


def lines_in_range(redshift: float, wave_min: float, wave_max: float) -> list[tuple[str, float, str]]:
    """Lines (name, observed wavelength, emission|absorption) that fall inside [wave_min, wave_max] at `redshift`."""
    z = float(redshift) if np.isfinite(redshift) else 0.0
    out = []
    for name, rest, kind in SPECTRAL_LINES:
        observed = rest * (1.0 + z)
        if wave_min <= observed <= wave_max:
            out.append((name, observed, kind))
    return out


def smooth_spectrum(flux: np.ndarray, ivar: np.ndarray, width: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance weighted boxcar smoothing; returns (flux, 1-sigma error) as long as `flux`, NaN where no
    valid pixel. A window longer than the spectrum is cut to its length."""
    flux = np.nan_to_num(np.asarray(flux, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    ivar = np.asarray(ivar, dtype=np.float64)
    ivar = np.where(np.isfinite(ivar) & (ivar > 0), ivar, 0.0)
    kernel = np.ones(max(1, min(int(width), len(flux))))
    weight = np.convolve(ivar, kernel, mode="same")
    weighted = np.convolve(flux * ivar, kernel, mode="same")
    with np.errstate(divide="ignore", invalid="ignore"):
        smoothed = np.where(weight > 0, weighted / weight, np.nan)
        # 1-sigma error of the weighted mean over the window.
        error = np.where(weight > 0, 1.0 / np.sqrt(weight), np.nan)
    return smoothed, error


def edges_from_centers(wave: np.ndarray) -> np.ndarray:
    """Pixel edges for a monotonic grid of pixel centres (midpoints; half a step beyond each end)."""
    wave = np.asarray(wave, dtype=np.float64)
    mid = 0.5 * (wave[1:] + wave[:-1])
    return np.concatenate([[wave[0] - (mid[0] - wave[0])], mid, [wave[-1] + (wave[-1] - mid[-1])]])


def resample_spectrum(
    wave_in: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None, wave_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Flux-conserving rebin of a flux density onto `wave_out` (pixel centres), propagating inverse variance.

    Each output pixel is the overlap-weighted mean of the good input pixels (ivar > 0, finite) it covers, and its
    variance the matching weighted sum of input variances. Output pixels not fully inside the input range, or covered
    by no good input pixel, get flux 0 and ivar 0. `ivar=None` (noise unknown): every finite input pixel counts and
    the returned ivar is None.
    """
    from scipy import sparse

    wave_in = np.asarray(wave_in, dtype=np.float64)
    wave_out = np.asarray(wave_out, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    known = ivar is not None
    ivar = np.ones_like(flux) if ivar is None else np.asarray(ivar, dtype=np.float64)
    if wave_in.shape != flux.shape or flux.shape != ivar.shape or wave_in.ndim != 1 or wave_in.size < 2:
        raise ValueError("wavelength, flux and ivar must be 1-D arrays of one length (at least 2)")
    if not np.all(np.diff(wave_in) > 0):
        raise ValueError("input wavelengths must increase strictly")
    e_in, e_out = edges_from_centers(wave_in), edges_from_centers(wave_out)
    lo, hi = max(e_in[0], e_out[0]), min(e_in[-1], e_out[-1])
    n_out = wave_out.size
    out_flux, out_ivar = np.zeros(n_out, np.float32), np.zeros(n_out, np.float32)
    if hi <= lo:
        return out_flux, (out_ivar if known else None)
    cuts = np.unique(np.concatenate([[lo, hi], e_in[(e_in > lo) & (e_in < hi)], e_out[(e_out > lo) & (e_out < hi)]]))
    seg_len, seg_mid = np.diff(cuts), 0.5 * (cuts[1:] + cuts[:-1])
    i_in = np.searchsorted(e_in, seg_mid) - 1
    j_out = np.searchsorted(e_out, seg_mid) - 1
    good = (ivar > 0) & np.isfinite(ivar) & np.isfinite(flux)
    keep = good[i_in]
    weights = sparse.csr_matrix((seg_len[keep], (j_out[keep], i_in[keep])), shape=(n_out, wave_in.size))
    norm = np.asarray(weights.sum(axis=1)).ravel()
    safe_flux = np.where(good, flux, 0.0)
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    inside = (e_out[:-1] >= e_in[0]) & (e_out[1:] <= e_in[-1]) & (norm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (weights @ safe_flux) / norm
        v = (weights.multiply(weights) @ var) / norm**2
    out_flux[inside] = f[inside]
    if not known:
        return out_flux, None
    ok = inside & (v > 0)
    out_ivar[ok] = 1.0 / v[ok]
    return out_flux, out_ivar


def label_levels(positions: list[float], min_gap: float, levels: int = 3) -> list[int]:
    """A row (0 = top) for each line label so that labels closer than `min_gap` sit on different rows."""
    last: list[float] = [-np.inf] * levels
    out = []
    for x in positions:
        row = next((r for r in range(levels) if x - last[r] >= min_gap), int(np.argmin(last)))
        last[row] = x
        out.append(row)
    return out


def rest_frame(wave: np.ndarray, redshift: float) -> np.ndarray:
    """Observed wavelengths shifted to the rest frame of a galaxy at `redshift`."""
    z = float(redshift) if np.isfinite(redshift) else 0.0
    return np.asarray(wave, dtype=np.float64) / (1.0 + z)
