"""Held-out evaluation of an aligned image/spectrum pair (the figures in the model card).

- zero-shot redshift: kNN regression (k=64, distance-weighted) on standardised vectors, fitted on the
  train split's vectors, R^2 on the test split; once from image vectors, once from spectrum vectors;
- cross-modal retrieval: for each image query, the rank of its own spectrum among up to 1,000
  held-out spectra (cosine similarity); the median rank is reported (1 = always first).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import r2_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from backend.hubness import csls, hubness_for, hubness_table, stored_queries
from backend.spaces import read_vectors
from backend.store import Atlas


def knn_redshift_r2(train_x: np.ndarray, train_z: np.ndarray, test_x: np.ndarray, test_z: np.ndarray, k: int = 64) -> float:
    """R^2 of distance-weighted kNN redshift on standardised vectors (scaler and kNN fitted on train)."""
    scaler = StandardScaler().fit(train_x)
    knn = KNeighborsRegressor(n_neighbors=min(k, len(train_x)), weights="distance")
    knn.fit(scaler.transform(train_x), train_z)
    return float(r2_score(test_z, knn.predict(scaler.transform(test_x))))


def cross_modal_ranks(image_vecs: np.ndarray, spectrum_vecs: np.ndarray, n: int = 1000, seed: int = 0,
                      spectrum_hub: np.ndarray | None = None) -> np.ndarray:
    """Rank (1 = first) of each image's own spectrum among `n` held-out spectra, by cosine similarity, or by CSLS
    when the spectra's stored hubness terms are given (backend.hubness: what the app's cross-modal search does)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(image_vecs), size=min(n, len(image_vecs)), replace=False)
    a = image_vecs[pick] / np.linalg.norm(image_vecs[pick], axis=1, keepdims=True)
    b = spectrum_vecs[pick] / np.linalg.norm(spectrum_vecs[pick], axis=1, keepdims=True)
    sims = a @ b.T
    if spectrum_hub is not None:
        sims = csls(sims, spectrum_hub[pick][None, :])
    return 1 + (sims > np.diag(sims)[:, None]).sum(axis=1)


def evaluate_pair(
    image: dict[str, np.ndarray], spectrum: dict[str, np.ndarray], redshift: dict[str, np.ndarray], k: int = 64,
    spectrum_hub: np.ndarray | None = None,
) -> dict:
    """Metrics from per-split arrays: image["train"], image["test"], spectrum[...], redshift[...] (aligned rows);
    with the test spectra's hubness terms, the cross-modal ranks under CSLS too."""
    ranks = cross_modal_ranks(image["test"], spectrum["test"])
    csls_figures = {}
    if spectrum_hub is not None:
        csls_ranks = cross_modal_ranks(image["test"], spectrum["test"], spectrum_hub=spectrum_hub)
        csls_figures = {"cross_modal_median_rank_csls": float(np.median(csls_ranks)),
                        "cross_modal_top1_csls": round(float(np.mean(csls_ranks == 1)), 4)}
    return {
        "knn_k": k,
        "n_train": int(len(redshift["train"])),
        "n_test": int(len(redshift["test"])),
        "image_redshift_r2": round(knn_redshift_r2(image["train"], redshift["train"], image["test"], redshift["test"], k), 4),
        "spectrum_redshift_r2": round(
            knn_redshift_r2(spectrum["train"], redshift["train"], spectrum["test"], redshift["test"], k), 4
        ),
        "cross_modal_pool": int(len(ranks)),
        "cross_modal_median_rank": float(np.median(ranks)),
        "cross_modal_top1": round(float(np.mean(ranks == 1)), 4),
        "cross_modal_top10": round(float(np.mean(ranks <= 10)), 4),
        **csls_figures,
    }


def evaluate_atlas(atlas: Atlas, image_space: str, spectrum_space: str, k: int = 64) -> dict:
    """The same metrics from two stored spaces of an atlas (objects embedded in both, by split)."""
    img_ids, img = read_vectors(atlas, image_space)
    spec_ids, spec = read_vectors(atlas, spectrum_space)
    spec_row = {oid: i for i, oid in enumerate(spec_ids)}
    common = [oid for oid in img_ids if oid in spec_row]
    img_row = {oid: i for i, oid in enumerate(img_ids)}
    meta = atlas.objects(["object_id", "split", "redshift"]).set_index("object_id")
    out_img, out_spec, out_z, out_ids = {}, {}, {}, {}
    for split in ("train", "test"):
        ids = out_ids[split] = [oid for oid in common if meta.at[oid, "split"] == split]
        out_img[split] = img[[img_row[o] for o in ids]]
        out_spec[split] = spec[[spec_row[o] for o in ids]]
        out_z[split] = meta.loc[ids, "redshift"].to_numpy(np.float64)
    hub = None
    if stored_queries(atlas, atlas.table_names()).get(spectrum_space) == image_space:
        hub = hubness_for(atlas, spectrum_space, atlas.table(hubness_table(spectrum_space)).version,
                          np.asarray(out_ids["test"], object))
    return evaluate_pair(out_img, out_spec, out_z, k, spectrum_hub=hub)


def _split_vectors(atlas: Atlas, space: str, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, vecs = read_vectors(atlas, space)
    meta = atlas.objects(["object_id", "split", column]).set_index("object_id")
    return vecs, meta.loc[ids, "split"].to_numpy(str), meta.loc[ids, column].to_numpy()


def space_redshift_r2(atlas: Atlas, space: str, k: int = 64) -> float:
    """kNN redshift R^2 (as above) of one stored space: fitted on its train split, scored on its test split."""
    vecs, split, z = _split_vectors(atlas, space, "redshift")
    tr, te = split == "train", split == "test"
    return knn_redshift_r2(vecs[tr], z[tr].astype(np.float64), vecs[te], z[te].astype(np.float64), k)


def neighbour_label_agreement(atlas: Atlas, space: str, column: str, k: int = 10) -> float:
    """Mean fraction of each object's k nearest neighbours (cosine, whole atlas) sharing its `column` label.

    An evaluation only: `column` is a truth column of the demo (e.g. `morphology`).
    """
    vecs, _, labels = _split_vectors(atlas, space, column)
    v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    nn = np.argsort(-sims, axis=1)[:, :k]
    return float((labels[nn] == labels[:, None]).mean())
