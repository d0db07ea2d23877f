"""SED fits with kcorrect's templates: coefficients, stellar mass, star formation, synthetic band fluxes.

kcorrect's own `fit_coeffs` loops over galaxies in Python; here the same non-negative least squares
problem (5 bands, 5 templates) is solved for all galaxies at once by enumerating the 31 active sets.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from astropy.cosmology import Planck18

SDSS_RESPONSES = ("sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0")
DECAM_RESPONSES = ("decam_g", "decam_r", "decam_z")
Z_MAX = 0.7
SFR_TIMESCALE_YR = 3.0e8  # the templates record the mass formed in the last 300 Myr
LOG_SSFR_FLOOR = -13.0


@lru_cache(maxsize=1)
def kcorrect_model():
    """kcorrect's SDSS fitter (v4 templates, ugriz in, DECam g,r,z out), on a coarse redshift grid."""
    import kcorrect.kcorrect

    return kcorrect.kcorrect.KcorrectSDSS(
        responses=list(SDSS_RESPONSES),
        responses_out=list(DECAM_RESPONSES),
        responses_map=["sdss_g0", "sdss_r0", "sdss_z0"],
        redshift_range=[0.0, Z_MAX],
        nredshift=141,
        abcorrect=True,
    )


def nnls_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact NNLS min ||A x - b||, x >= 0, for a batch: a [n, m, k], b [n, m] -> x [n, k] (small k)."""
    n, _, k = a.shape
    best = np.zeros((n, k))
    best_chi2 = np.einsum("ij,ij->i", b, b)
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            sub = a[:, :, subset]
            ata = np.einsum("nmi,nmj->nij", sub, sub) + 1e-12 * np.eye(size)
            atb = np.einsum("nmi,nm->ni", sub, b)
            x = np.linalg.solve(ata, atb[..., None])[..., 0]
            resid = np.einsum("nmi,ni->nm", sub, x) - b
            chi2 = np.einsum("ij,ij->i", resid, resid)
            ok = np.all(x >= 0, axis=1) & (chi2 < best_chi2 - 1e-12 * np.abs(best_chi2))
            if ok.any():
                full = np.zeros((int(ok.sum()), k))
                full[:, subset] = x[ok]
                best[ok] = full
                best_chi2[ok] = chi2[ok]
    return best


@dataclass
class SedFit:
    """Template coefficients and derived truth for every catalogue galaxy."""

    coeffs: np.ndarray  # [n, 5] kcorrect template coefficients
    stellar_mass: np.ndarray  # log10 Msun (remaining mass in stars and remnants)
    sfr: np.ndarray  # Msun / yr, averaged over the last 300 Myr
    ssfr: np.ndarray  # log10 (sfr / M*) per yr, floored at LOG_SSFR_FLOOR
    metallicity: np.ndarray  # mass-weighted stellar metallicity Z
    rest_ur: np.ndarray  # rest-frame ^0.0(u - r), AB
    rest_gr: np.ndarray  # rest-frame ^0.0(g - r), AB
    decam_nmgy: np.ndarray  # [n, 3] observed-frame DECam g, r, z total fluxes (extinction-free), nanomaggies


def fit_seds(redshift: np.ndarray, maggies: np.ndarray, ivar: np.ndarray) -> SedFit:
    """Fit kcorrect's templates to ugriz photometry (AB-corrected here) and derive truth quantities."""
    kc = kcorrect_model()
    z = np.clip(np.asarray(redshift, np.float64), 0.0, Z_MAX)
    ab_maggies, ab_ivar = kc.to_ab(maggies=np.array(maggies, np.float32), ivar=np.array(ivar, np.float32))
    a_in = np.asarray(kc.Amatrix(z), np.float64)  # [n, 5 bands, 5 templates]
    inverr = np.sqrt(np.asarray(ab_ivar, np.float64))
    coeffs = nnls_batch(a_in * inverr[..., None], np.asarray(ab_maggies, np.float64) * inverr)

    t = kc.templates
    dfactor = 10.0 ** (0.4 * Planck18.distmod(np.maximum(z, 1e-4)).value)
    mremain = coeffs @ t.mremain * dfactor
    m300 = coeffs @ t.m300 * dfactor
    metals = coeffs @ (t.mremain * t.mets) * dfactor
    sfr = m300 / SFR_TIMESCALE_YR
    with np.errstate(divide="ignore", invalid="ignore"):
        mass = np.log10(np.maximum(mremain, 1.0))
        ssfr = np.maximum(np.log10(np.maximum(sfr, 1e-30)) - mass, LOG_SSFR_FLOOR)
        metallicity = np.where(mremain > 0, metals / mremain, 0.02)
    rest = coeffs @ np.asarray(kc.Amatrix(0.0), np.float64).T  # [n, 5] rest-frame ugriz maggies
    rest = np.maximum(rest, 1e-30)
    decam = np.einsum("nbk,nk->nb", np.asarray(kc.AmatrixOut(z), np.float64), coeffs) * 1e9
    return SedFit(
        coeffs=coeffs,
        stellar_mass=mass,
        sfr=sfr,
        ssfr=ssfr,
        metallicity=metallicity,
        rest_ur=-2.5 * np.log10(rest[:, 0] / rest[:, 2]),
        rest_gr=-2.5 * np.log10(rest[:, 1] / rest[:, 2]),
        decam_nmgy=decam,
    )


def decam_fluxes(redshift: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Observed DECam g, r, z fluxes (nanomaggies) of template mixtures at their redshifts."""
    kc = kcorrect_model()
    z = np.clip(np.asarray(redshift, np.float64), 0.0, Z_MAX)
    return np.einsum("nbk,nk->nb", np.asarray(kc.AmatrixOut(z), np.float64), np.asarray(coeffs, np.float64)) * 1e9
