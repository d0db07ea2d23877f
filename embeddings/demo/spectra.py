"""Observed-frame DESI-like spectra from the fitted SEDs: continuum, nebular lines, rare spectra, noise.

Flux unit: 1e-17 erg/s/cm^2/A inside a 1.5" fibre (DESI convention); ivar is 1/variance of the noise
actually added (sky + read + source photon noise), computed from the noiseless model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from astropy.cosmology import Planck18
from scipy.ndimage import gaussian_filter1d, median_filter

from backend.spectra import desi_wavelength
from embeddings.demo.sed import kcorrect_model

C_KMS = 299_792.458
HC_ERG_A = 1.98645e-8  # h c in erg * Angstrom
MPC_CM = 3.0857e24
KENNICUTT_HALPHA = 5.37e-42  # SFR [Msun/yr] per L(Halpha) [erg/s], Kennicutt & Evans 2012 (Kroupa/Chabrier IMF)

# Vacuum rest wavelengths (Angstrom).
HALPHA, HBETA, HGAMMA, HDELTA = 6564.61, 4862.68, 4341.68, 4102.89
OII_3727, OII_3730 = 3727.09, 3729.88
OIII_5008, OIII_4960 = 5008.24, 4960.30
NII_6585, NII_6550 = 6585.27, 6549.86
SII_6718, SII_6733 = 6718.29, 6732.67
MGII = 2799.12

# Nebular lines present in kcorrect's templates; their peaks are clipped so that lines are added once, here.
_TEMPLATE_LINES = [
    2799, 3727, 3869, 3889, 3968, 4102, 4341, 4363, 4861, 4959, 5007, 5876, 6300, 6364,
    6548, 6563, 6584, 6678, 6717, 6731, 7065, 7136, 7320, 7330, 9069, 9532,
]
SIGMA_BINS_KMS = np.array([60.0, 100.0, 140.0, 180.0, 230.0, 300.0])
_DLOG = 1e-4  # fine rest-frame grid spacing in ln(lambda), 30 km/s
_EFF_WAVE_SDSS = np.array([3551.0, 4686.0, 6166.0, 7480.0, 8932.0])
_EXT_COEF_SDSS = np.array([5.155, 3.793, 2.751, 2.086, 1.479])  # A_band / E(B-V), Schlegel et al. 1998


@dataclass(frozen=True)
class SpectrumModel:
    """Precomputed pieces shared by every spectrum: templates, sky, throughput, extinction shape."""

    wave: np.ndarray  # observed grid (A)
    log_rest0: float
    templates: np.ndarray  # [n_sigma_bins, 5, n_fine] line-free templates, broadened per velocity bin
    sky: np.ndarray  # sky counts per second per pixel (before throughput scaling)
    counts_per_unit: np.ndarray  # photon counts per (1e-17 erg/s/cm^2/A) per second of exposure
    resolution_sigma: np.ndarray  # instrumental line sigma (A) at each pixel
    ext_shape: np.ndarray  # A(lambda) / A_r


def _strip_lines(wave: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Remove emission-line peaks (keep absorption) near known nebular lines."""
    out = flux.copy()
    for k in range(flux.shape[0]):
        smooth = median_filter(flux[k].astype(np.float64), size=31, mode="nearest")
        for line in _TEMPLATE_LINES:
            sel = np.abs(wave - line) < 30.0
            out[k, sel] = np.minimum(flux[k, sel], smooth[sel])
    return out


def _sky_spectrum(wave: np.ndarray) -> np.ndarray:
    """Approximate dark-sky spectrum per fibre (1e-17 erg/s/cm^2/A): continuum plus airglow lines.

    The strong atomic lines are real ([OI] 5577, NaD, [OI] 6300/6364); the OH forest redward of
    6800 A is a fixed pseudo-random line list with the right band structure, not a measured list.
    """
    sky = 1.2 + 1.0 * (wave - wave[0]) / (wave[-1] - wave[0])
    lines = [(5578.9, 150.0), (5891.6, 40.0), (5897.6, 30.0), (6302.0, 60.0), (6365.5, 20.0)]
    rng = np.random.default_rng(12345)
    for lo, hi, count in [(6830, 6980, 12), (7240, 7420, 18), (7750, 8050, 25), (8280, 8550, 25),
                          (8760, 9060, 30), (9300, 9824, 40)]:
        lines += list(zip(rng.uniform(lo, hi, count), 10 ** rng.uniform(0.7, 2.4, count), strict=True))
    sigma = wave / (2.355 * _resolution(wave))
    for centre, strength in lines:
        sky += strength * np.exp(-0.5 * ((wave - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return sky


def _resolution(wave: np.ndarray) -> np.ndarray:
    """DESI-like resolving power, rising from ~2000 at 3600 A to ~5000 at 9800 A."""
    return 2000.0 + 3000.0 * (wave - 3600.0) / (9824.0 - 3600.0)


@lru_cache(maxsize=1)
def spectrum_model() -> SpectrumModel:
    """Build (once per process) the shared spectral ingredients."""
    kc = kcorrect_model()
    t_wave = np.asarray(kc.templates.restframe_wave, np.float64)
    t_flux = _strip_lines(t_wave, np.asarray(kc.templates.restframe_flux, np.float64))
    log0 = np.log(1800.0)
    fine = np.exp(log0 + _DLOG * np.arange(int(np.log(10_000.0 / 1800.0) / _DLOG) + 1))
    base = np.stack([np.interp(fine, t_wave, f) for f in t_flux])
    broadened = np.stack([gaussian_filter1d(base, s / C_KMS / _DLOG, axis=-1, mode="nearest") for s in SIGMA_BINS_KMS])
    wave = desi_wavelength()
    area_cm2, pixel_a = 8.6e4, float(wave[1] - wave[0])
    throughput = 0.45 * np.exp(-(((wave - 6800.0) / 3600.0) ** 4))
    counts = 1e-17 * area_cm2 * pixel_a * throughput * wave / HC_ERG_A
    ext_shape = np.interp(1.0 / wave, 1.0 / _EFF_WAVE_SDSS[::-1], _EXT_COEF_SDSS[::-1]) / _EXT_COEF_SDSS[2]
    return SpectrumModel(
        wave=wave,
        log_rest0=float(log0),
        templates=broadened.astype(np.float32),
        sky=_sky_spectrum(wave),
        counts_per_unit=counts,
        resolution_sigma=wave / (2.355 * _resolution(wave)),
        ext_shape=ext_shape,
    )


def continuum(params: pd.DataFrame, model: SpectrumModel) -> np.ndarray:
    """Noiseless stellar continuum [n, npix] (1e-17 erg/s/cm^2/A, total flux) from the template coefficients."""
    wave = model.wave
    coeffs = params[[f"c{k}" for k in range(5)]].to_numpy(np.float64)
    z = params["redshift"].to_numpy(np.float64)
    bins = np.abs(np.log(params["sigma_star"].to_numpy())[:, None] - np.log(SIGMA_BINS_KMS)[None]).argmin(axis=1)
    pos = (np.log(wave)[None, :] - np.log1p(z)[:, None] - model.log_rest0) / _DLOG
    lo = np.clip(np.floor(pos).astype(np.int64), 0, model.templates.shape[-1] - 2)
    frac = (pos - lo).astype(np.float32)
    out = np.empty((len(z), len(wave)), np.float64)
    for i in range(len(z)):
        tmpl = model.templates[bins[i]]  # [5, n_fine]
        mix = coeffs[i] @ tmpl  # the galaxy's rest-frame SED on the fine grid
        out[i] = mix[lo[i]] * (1 - frac[i]) + mix[lo[i] + 1] * frac[i]
    return out * 1e17 / (1.0 + z)[:, None]


def _add_gaussians(spec: np.ndarray, wave: np.ndarray, centre: np.ndarray, sigma: np.ndarray, flux: np.ndarray) -> None:
    """Add one Gaussian line per spectrum (flux in 1e-17 erg/s/cm^2, sigma in A), in place."""
    for i in np.flatnonzero((flux != 0) & (centre > wave[0] - 50) & (centre < wave[-1] + 50)):
        half = max(8.0, 6.0 * sigma[i])
        lo, hi = np.searchsorted(wave, [centre[i] - half, centre[i] + half])
        if hi <= lo:
            continue
        x = wave[lo:hi]
        spec[i, lo:hi] += flux[i] * np.exp(-0.5 * ((x - centre[i]) / sigma[i]) ** 2) / (np.sqrt(2 * np.pi) * sigma[i])


def line_sigma(wave_obs: np.ndarray, sigma_kms: np.ndarray, model: SpectrumModel) -> np.ndarray:
    """Observed line sigma (A): velocity dispersion and instrumental resolution in quadrature."""
    inst = np.interp(wave_obs, model.wave, model.resolution_sigma)
    return np.hypot(wave_obs * sigma_kms / C_KMS, inst)


def emission_lines(params: pd.DataFrame, model: SpectrumModel) -> np.ndarray:
    """Nebular (and AGN/lens-source) lines [n, npix] in 1e-17 erg/s/cm^2/A, total flux."""
    n = len(params)
    z = params["redshift"].to_numpy(np.float64)
    spec = np.zeros((n, len(model.wave)))
    dl_cm = Planck18.luminosity_distance(np.maximum(z, 1e-4)).value * MPC_CM
    to_flux = 1e17 / (4 * np.pi * dl_cm**2)
    halpha_int = params["sfr_lines"].to_numpy() / KENNICUTT_HALPHA * to_flux  # intrinsic Halpha flux
    ebv = params["ebv_gas"].to_numpy()
    n2 = 10 ** params["log_n2"].to_numpy()
    o3 = 10 ** params["log_o3"].to_numpy()
    o2 = 10 ** params["log_o2"].to_numpy()
    calzetti = {HALPHA: 3.33, HBETA: 4.60, OII_3727: 5.86, OIII_5008: 4.46, HGAMMA: 5.12, SII_6718: 3.27}

    def att(k: float) -> np.ndarray:
        return 10 ** (-0.4 * ebv * k)

    hbeta_int = halpha_int / 2.86
    lines = [
        (HALPHA, halpha_int * att(calzetti[HALPHA])),
        (HBETA, hbeta_int * att(calzetti[HBETA])),
        (HGAMMA, hbeta_int * 0.468 * att(calzetti[HGAMMA])),
        (HDELTA, hbeta_int * 0.259 * att(5.39)),
        (NII_6585, n2 * halpha_int * att(calzetti[HALPHA])),
        (NII_6550, n2 * halpha_int / 3.05 * att(calzetti[HALPHA])),
        (OIII_5008, o3 * hbeta_int * att(calzetti[OIII_5008])),
        (OIII_4960, o3 * hbeta_int / 2.98 * att(calzetti[OIII_5008])),
        (OII_3727, 0.45 * o2 * halpha_int * att(calzetti[OII_3727])),
        (OII_3730, 0.55 * o2 * halpha_int * att(calzetti[OII_3727])),
        (SII_6718, 0.18 * halpha_int * att(calzetti[SII_6718])),
        (SII_6733, 0.13 * halpha_int * att(calzetti[SII_6718])),
    ]
    sigma_gas = params["sigma_gas"].to_numpy()
    for rest, flux in lines:
        centre = rest * (1 + z)
        _add_gaussians(spec, model.wave, centre, line_sigma(centre, sigma_gas, model), flux)

    agn = params["agn_l5100"].to_numpy()  # AGN continuum f_lambda at rest 5100 A, 1e-17 units (observed)
    if np.any(agn > 0):
        _add_agn(spec, params, model, agn, z)
    src = params["lens_source_z"].to_numpy()
    if np.any(src > 0):
        oii = params["lens_source_oii"].to_numpy()
        for rest, share in ((OII_3727, 0.45), (OII_3730, 0.55)):
            centre = rest * (1 + src)
            _add_gaussians(spec, model.wave, centre, line_sigma(centre, np.full(n, 70.0), model), share * oii * (src > 0))
    return spec


def _add_agn(spec: np.ndarray, params: pd.DataFrame, model: SpectrumModel, agn: np.ndarray, z: np.ndarray) -> None:
    """Quasar-like power-law continuum plus broad Balmer and MgII lines and narrow [OIII]."""
    wave = model.wave
    rest = wave[None, :] / (1 + z[:, None])
    spec += np.where(agn[:, None] > 0, agn[:, None] * (rest / 5100.0) ** -1.5, 0.0)
    fwhm = params["agn_fwhm"].to_numpy()
    sigma_v = fwhm / 2.355
    # Line fluxes from equivalent widths against the power law (rest EW: Halpha 400 A, Hbeta 90 A, MgII 50 A).
    for line, ew in ((HALPHA, 400.0), (HBETA, 90.0), (HGAMMA, 35.0), (MGII, 50.0)):
        centre = line * (1 + z)
        cont = agn * (line / 5100.0) ** -1.5
        _add_gaussians(spec, wave, centre, line_sigma(centre, sigma_v, model), cont * ew * (1 + z) * (agn > 0))
    hb_flux = agn * (HBETA / 5100.0) ** -1.5 * 90.0 * (1 + z)
    for line, ratio in ((OIII_5008, 1.2), (OIII_4960, 0.4)):
        centre = line * (1 + z)
        _add_gaussians(spec, wave, centre, line_sigma(centre, np.full(len(z), 250.0), model), ratio * hb_flux * (agn > 0))


def balmer_absorption(params: pd.DataFrame, model: SpectrumModel) -> np.ndarray:
    """Multiplicative extra Balmer absorption for post-starburst spectra (rest EW in params), [n, npix]."""
    ew = params["psb_balmer_ew"].to_numpy()
    z = params["redshift"].to_numpy()
    factor = np.ones((len(params), len(model.wave)))
    for line, scale in ((HDELTA, 1.0), (HGAMMA, 0.9), (HBETA, 0.8), (3890.2, 0.9), (3971.2, 0.9), (3836.5, 0.7)):
        centre = line * (1 + z)
        sigma = 9.0 * (1 + z)  # broad A-star wings
        depth = np.clip(ew * scale * (1 + z) / (np.sqrt(2 * np.pi) * sigma), 0, 0.8)
        prof = np.exp(-0.5 * ((model.wave[None, :] - centre[:, None]) / sigma[:, None]) ** 2)
        factor *= 1 - depth[:, None] * prof
    return factor


def synthesize(params: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy observed spectra, their ivar and the noiseless model, all [n, 7781] float32."""
    model = spectrum_model()
    cont = continuum(params, model)
    if params["psb_balmer_ew"].to_numpy().any():
        cont *= balmer_absorption(params, model)
    total = cont + emission_lines(params, model)
    total *= 10 ** (-0.4 * params["ext_r"].to_numpy()[:, None] * model.ext_shape[None, :])
    fibre = total * params["fiber_fraction"].to_numpy()[:, None]
    flux = np.empty_like(fibre, dtype=np.float32)
    ivar = np.empty_like(fibre, dtype=np.float32)
    read_var = 45.0
    for i, (row, texp) in enumerate(zip(params["row"].to_numpy(), params["exptime"].to_numpy(), strict=True)):
        gain = model.counts_per_unit * texp  # counts per flux unit
        var_counts = np.maximum(fibre[i], 0) * gain + model.sky * gain + read_var
        var = var_counts / gain**2
        rng = np.random.default_rng([seed, int(row), 1])
        flux[i] = fibre[i] + rng.standard_normal(len(var)) * np.sqrt(var)
        ivar[i] = 1.0 / var
    return flux, ivar, fibre.astype(np.float32)
