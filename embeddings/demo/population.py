"""The demo's ground truth: morphology drawn from the SED, structure, planted rare classes, subset choice.

Everything is drawn for all 10,000 catalogue rows from one generator seeded by `seed`, so a galaxy's
truth does not depend on which subset (n) is built or how the work is chunked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy.cosmology import Planck18
from scipy.special import gammainc

from embeddings.demo.catalogue import Catalogue, object_id, split_for
from embeddings.demo.sed import SedFit, decam_fluxes, kcorrect_model

RARE_CLASSES = ("ring", "merger", "lens", "dust_lane", "artefact", "agn", "post_starburst")
ARTEFACT_KINDS = ("satellite_trail", "star_spike", "bad_column")
RARE_PER_CLASS = 30  # at the full 10,000 (7 x 30 = 2.1 %)
DECAM_EFF_WAVE = np.array([4800.0, 6400.0, 9200.0])
NMGY_CGS = 3.631e-29  # erg/s/cm^2/Hz per nanomaggy
C_A_S = 2.998e18
QUENCHED_SSFR = -11.0


def _morphology(rng: np.random.Generator, mass: np.ndarray, quenched: np.ndarray) -> np.ndarray:
    """Draw a Hubble type conditionally on the SED: red -> elliptical/S0, blue -> spiral/irregular."""
    n = len(mass)
    p_e = np.clip(0.45 + 0.35 * (mass - 10.8), 0.2, 0.8)
    red = np.stack([p_e, 0.92 - p_e, np.full(n, 0.06), np.full(n, 0.02), np.zeros(n)], axis=1)
    p_irr = np.clip(0.08 + 0.25 * (10.0 - mass), 0.04, 0.6)
    blue = np.stack([np.full(n, 0.02), 0.08 * (1 - p_irr), 0.6 * (1 - p_irr), 0.3 * (1 - p_irr), p_irr], axis=1)
    probs = np.where(quenched[:, None], red, blue)
    probs /= probs.sum(axis=1, keepdims=True)
    types = np.array(["elliptical", "s0", "spiral", "barred_spiral", "irregular"])
    u = rng.random(n)
    return types[(u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, 4)]


def _fibre_fraction(hlr: np.ndarray, psf_fwhm: np.ndarray, sersic_n: np.ndarray, radius: float = 0.75) -> np.ndarray:
    """Light inside a 1.5" fibre: Sersic enclosed light with the seeing added to the size in quadrature."""
    re_eff = np.hypot(hlr, 0.5 * psf_fwhm)
    b = 2 * sersic_n - 1 / 3 + 4 / (405 * sersic_n)
    return gammainc(2 * sersic_n, b * (radius / re_eff) ** (1 / sersic_n))


def _pick(rng: np.random.Generator, eligible: np.ndarray, taken: np.ndarray, k: int, weight: np.ndarray | None = None) -> np.ndarray:
    pool = np.flatnonzero(eligible & ~taken)
    if len(pool) < k:  # relax eligibility rather than plant fewer
        pool = np.union1d(pool, np.flatnonzero(~taken))
    p = None if weight is None else weight[pool] / weight[pool].sum()
    return rng.choice(pool, size=k, replace=False, p=p)


def draw_population(cat: Catalogue, fit: SedFit, seed: int) -> pd.DataFrame:
    """One row per catalogue galaxy: labels, structural and spectral parameters for rendering."""
    rng = np.random.default_rng([seed, 2024])
    n = len(cat)
    z = cat.redshift
    mass = fit.stellar_mass
    quenched = fit.ssfr < QUENCHED_SSFR
    morph = _morphology(rng, mass, quenched)

    # Planted rare classes, mutually exclusive, fixed by the seed.
    kc = kcorrect_model()
    a_r = np.asarray(kc.Amatrix(np.clip(z, 0, 0.7)), np.float64)[:, 2, :]  # SDSS r response per template
    light = fit.coeffs * a_r
    frac_a = light[:, 4] / np.maximum(light.sum(axis=1), 1e-30)  # share of r light from the A-star-like template
    rare = np.full(n, "", dtype=object)
    taken = np.zeros(n, bool)
    disk_like = np.isin(morph, ["spiral", "barred_spiral", "s0"])
    rules = {
        "lens": (quenched & (mass > 11.0) & (z > 0.08) & (z < 0.35), None),
        "dust_lane": (disk_like & (z < 0.07) & (mass > 10.0), None),
        "ring": (~quenched & (mass > 9.8), None),
        "merger": (mass > 10.0, None),
        "agn": (mass > 10.3, None),
        "post_starburst": ((mass > 9.8) & (mass < 11.3) & (frac_a > 0.05) & (fit.ssfr < -10.0), frac_a + 1e-3),
        "artefact": (np.ones(n, bool), None),
    }
    order = np.empty(n, np.int64)  # rank inside its rare class (subsets keep the lowest ranks)
    order[:] = -1
    for cls, (eligible, weight) in rules.items():
        chosen = _pick(rng, eligible, taken, RARE_PER_CLASS, weight)
        rare[chosen] = cls
        taken[chosen] = True
        order[chosen] = np.arange(len(chosen))
    artefact = np.full(n, "", dtype=object)
    art_rows = np.flatnonzero(rare == "artefact")
    artefact[art_rows] = [ARTEFACT_KINDS[r % 3] for r in order[art_rows]]

    morph = morph.astype(object)
    morph[rare == "ring"] = "ring"
    morph[rare == "merger"] = "merger"
    morph[rare == "lens"] = "lens"
    psb = rare == "post_starburst"
    morph[psb] = np.where(rng.random(psb.sum()) < 0.5, "s0", "elliptical")

    # Disk orientation; dust-lane hosts are edge-on by construction.
    cos_i = rng.random(n)
    cos_i[rare == "dust_lane"] = rng.uniform(0.0, 0.08, (rare == "dust_lane").sum())
    incl = np.degrees(np.arccos(cos_i))
    edge = np.isin(morph, ["spiral", "barred_spiral", "s0"]) & (incl > 82.0)
    morph[edge | (rare == "dust_lane")] = "edge_on"

    # Template coefficients: post-starburst spectra swap young light for the A-star-like template.
    coeffs = fit.coeffs.copy()
    r_total = light.sum(axis=1)
    share = rng.uniform(0.45, 0.75, n)
    coeffs[psb] = 0.0
    coeffs[psb, 4] = share[psb] * r_total[psb] / a_r[psb, 4]
    coeffs[psb, 3] = (1 - share[psb]) * r_total[psb] / a_r[psb, 3]
    stellar_mass = mass.copy()
    ssfr = fit.ssfr.copy()
    if psb.any():
        t = kc.templates
        dfactor = 10.0 ** (0.4 * Planck18.distmod(z[psb]).value)
        m_psb = coeffs[psb] @ t.mremain * dfactor
        stellar_mass[psb] = np.log10(m_psb)
        ssfr[psb] = np.log10(coeffs[psb] @ t.m300 * dfactor / 3e8) - stellar_mass[psb]
    decam = fit.decam_nmgy.copy()
    decam[psb] = decam_fluxes(z[psb], coeffs[psb])
    dfac_all = 10.0 ** (0.4 * Planck18.distmod(np.maximum(z, 1e-4)).value)
    sfr_lines = coeffs @ kc.templates.m300 * dfac_all / 3e8  # recent (300 Myr) star formation of the fit

    # Sizes (van der Wel et al. 2014-like size-mass relations at z~0.25, 0.18 dex scatter).
    early = np.isin(morph, ["elliptical", "s0", "lens"]) | psb
    log_re = np.where(early, 0.50 + 0.75 * (stellar_mass - 10.7), 0.62 + 0.22 * (stellar_mass - 10.7))
    log_re += rng.normal(0, 0.18, n) - 0.15 * psb  # post-starbursts are compact
    da_kpc = Planck18.angular_diameter_distance(np.maximum(z, 1e-3)).value * 1e3
    hlr = np.clip(10**log_re / da_kpc * 206264.8, 0.3, 12.0)

    # Observing conditions.
    psf = rng.uniform(1.0, 1.5, n)
    sky_scale = np.exp(rng.normal(0, 0.2, n))
    ebv = cat.extinction[:, 2] / 2.751
    fiber_fraction = _fibre_fraction(hlr, psf, np.where(early, 4.0, 1.0))
    ext_grz = np.stack([cat.extinction[:, 1], cat.extinction[:, 2], cat.extinction[:, 4]], axis=1)
    flux_obs = decam * 10 ** (-0.4 * ext_grz)

    # Nebular line physics: mass-metallicity (Tremonti+04) -> [NII]/Ha (Pettini & Pagel 04) -> BPT locus.
    oh = np.clip(-1.492 + 1.847 * stellar_mass - 0.08026 * stellar_mass**2, 8.0, 9.2)
    log_n2 = np.clip((oh - 8.90) / 0.57, -1.6, -0.35) + rng.normal(0, 0.05, n)
    log_o3 = 0.61 / (log_n2 - 0.05) + 1.3 - 0.15 + rng.normal(0, 0.08, n)
    log_o2 = np.clip(-0.05 - 0.8 * (oh - 8.6), -0.7, 0.5) + rng.normal(0, 0.05, n)
    x = stellar_mass - 10.0
    a_halpha = np.clip(0.91 + 0.77 * x + 0.11 * x**2 - 0.09 * x**3, 0.1, 2.5)  # Garn & Best 2010
    sigma_star = np.clip(10 ** (2.15 + 0.3 * (stellar_mass - 11.0)) * np.where(early, 1.0, 0.75), 50, 350)

    # Rare spectra and lens sources.
    agn = rare == "agn"
    host_flam_r = flux_obs[:, 1] * NMGY_CGS * C_A_S / DECAM_EFF_WAVE[1] ** 2 * 1e17
    agn_l5100 = np.where(agn, rng.uniform(0.12, 0.45, n) * host_flam_r * (6400 / (1 + z) / 5100) ** 1.5, 0.0)
    lens = rare == "lens"
    src_z = np.where(lens, rng.uniform(0.45, 1.1, n), 0.0)

    table = pd.DataFrame(
        {
            "row": cat.row,
            "object_id": [object_id(r) for r in cat.row],
            "ra": cat.ra,
            "dec": cat.dec,
            "redshift": z,
            "morphology": morph.astype(str),
            "rare_class": rare.astype(str),
            "is_rare": rare != "",
            "rare_rank": order,
            "artefact": artefact.astype(str),
            "stellar_mass": stellar_mass,
            "ssfr": ssfr,
            "sfr": np.log10(np.maximum(10 ** (ssfr + stellar_mass), 1e-6)),
            "rest_ur": fit.rest_ur,
            "inclination": incl,
            "half_light_radius": hlr,
            "psf_fwhm": psf,
            "sky_scale": sky_scale,
            "fiber_fraction": fiber_fraction,
            "flux_g": flux_obs[:, 0],
            "flux_r": flux_obs[:, 1],
            "flux_z": flux_obs[:, 2],
            "ext_r": cat.extinction[:, 2],
            "ebv": ebv,
            "sigma_star": sigma_star,
            "sigma_gas": rng.uniform(35, 80, n),
            "sfr_lines": np.where(psb, 0.0, sfr_lines),
            "ebv_gas": a_halpha / 3.33,
            "log_n2": log_n2,
            "log_o3": log_o3,
            "log_o2": log_o2,
            "exptime": 300.0 * np.exp(rng.normal(0, 0.35, n)),
            "agn_l5100": agn_l5100,
            "agn_fwhm": rng.uniform(2500, 7000, n),
            "psb_balmer_ew": np.where(psb, rng.uniform(3.0, 6.0, n), 0.0),
            "lens_source_z": src_z,
            "lens_source_oii": np.where(lens, rng.uniform(8, 30, n), 0.0),
            "pa": rng.uniform(0, 180, n),
            "struct_seed": rng.integers(0, 2**31 - 1, n),
        }
    )
    for k in range(5):
        table[f"c{k}"] = coeffs[:, k]
    mags = cat.magnitudes()
    for j, band in enumerate("ugriz"):
        table[f"mag_{band}"] = mags[:, j]
    table["g_r"] = mags[:, 1] - mags[:, 2]
    table["split"] = [split_for(oid) for oid in table["object_id"]]
    return table


def choose_subset(pop: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A deterministic subset of n rows that keeps every rare class (and artefact kind) represented."""
    if n >= len(pop):
        return pop
    per_class = max(3, int(np.ceil(RARE_PER_CLASS * n / len(pop))))
    rare_rows = pop.index[(pop["rare_class"] != "") & (pop["rare_rank"] < per_class)]
    rare_rows = rare_rows[: max(0, n)]
    rest = pop.index[pop["rare_class"] == ""].to_numpy()
    rng = np.random.default_rng([seed, 77])
    fill = rng.permutation(rest)[: max(0, n - len(rare_rows))]
    rows = np.sort(np.concatenate([rare_rows.to_numpy(), fill]))
    return pop.loc[rows]
