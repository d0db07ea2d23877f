"""Discovery features, computed once per feature set: PCA-reduced space vectors and measured parameter sets.

A feature set is a name and a matrix with one row per object: each embedding space (its vectors
L2-normalised, PCA-reduced), and the measured parameter sets when the atlas has them, each its
catalogue columns robustly standardised: `morphology` (`morph_*`, embeddings.morphology) and
`spectral_indices` (`line_*`, embeddings.spectral_indices). Maps, anomaly detectors, clusters, active learning and
"more like these" all read these matrices; none of them reads a truth column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend import maps, schema
from backend.spaces import list_spaces, read_vectors
from backend.store import Atlas, AtlasError

JOINT_COMPONENTS = 16  # per feature set in the joint features
REDSHIFT_WINDOW = 50  # a spectrum space's anomaly features: each object relative to the mean of this many nearest in z
DEFAULT_COMPONENTS = 64  # PCA components kept (16 lost rare-object signal in the 128-d builtin space: p@100 0.27 vs 0.43)
MORPHOLOGY = "morphology"
SPECTRAL_INDICES = "spectral_indices"
PARAMETER_SETS = {MORPHOLOGY: "morph_", SPECTRAL_INDICES: "line_"}  # measured parameter set -> its column prefix
PARAMETER_LABELS = {MORPHOLOGY: "morphology parameters", SPECTRAL_INDICES: "spectral indices"}  # as the app names them


@dataclass(frozen=True)
class FeatureSet:
    """One matrix of discovery features: `ids[i]` is the object of row `X[i]`."""

    name: str
    ids: list[str]
    X: np.ndarray
    parameters: bool = False  # a measured parameter set (a few named columns), not an embedding space

    def rows(self, object_ids: list[str]) -> np.ndarray:
        """Row indices of the given ids that this set holds (others dropped), in the order given."""
        pos = {oid: i for i, oid in enumerate(self.ids)}
        return np.array([pos[o] for o in object_ids if o in pos], dtype=np.int64)


def space_features(atlas: Atlas, space: str, n_components: int = DEFAULT_COMPONENTS, seed: int = 42) -> FeatureSet:
    """A space's vectors, L2-normalised and PCA-reduced (read once; slice `X[:, :k]` for fewer components)."""
    ids, vectors = read_vectors(atlas, space)
    if len(ids) < 5:
        raise AtlasError(f"space {space} has {len(ids)} vectors; need at least 5")
    return FeatureSet(space, ids, maps.reduce(vectors, n_components, seed))


def parameter_columns(atlas: Atlas, name: str = MORPHOLOGY) -> list[str]:
    """The columns of a measured parameter set in the objects table (empty when it was never measured)."""
    if not atlas.has_table("objects"):
        return []
    return [column for column in atlas.columns(schema.OBJECTS) if column.startswith(PARAMETER_SETS[name])]


def robust_centre_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column median and robust spread: 1.4826 MAD, the standard deviation where the MAD is 0, 1 where both are."""
    med = np.nanmedian(values, axis=0)
    mad = 1.4826 * np.nanmedian(np.abs(values - med), axis=0)
    scale = np.where(mad > 0, mad, np.nanstd(values, axis=0))
    return med, np.where(scale > 0, scale, 1.0)


def robust_standardise(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD) per column, NaN -> 0 (the median), clipped to +-20."""
    med, scale = robust_centre_scale(values)
    out = (values - med) / scale
    return np.clip(np.nan_to_num(out, nan=0.0), -20, 20).astype(np.float32)


def standardised(X: np.ndarray) -> np.ndarray:
    """Each column to zero mean and unit variance, so every feature weighs alike in a distance: the active search's
    (a minor component or a ranking set's anomaly score as much as a leading one; seeds 0 / 2, 200 reviewed,
    EXPLORE = 2, mean of 3 forest seeds: 124.7 -> 129.7 and 113.3 -> 115.3 found) and the shape space's image block."""
    X = np.asarray(X, np.float64)
    return (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-9)


def parameter_features(atlas: Atlas, name: str = MORPHOLOGY) -> FeatureSet | None:
    """A measured parameter set of every measured object, robustly standardised; None when not measured."""
    columns = parameter_columns(atlas, name)
    if not columns:
        return None
    frame = atlas.objects(["object_id", *columns])
    values = frame[columns].to_numpy(np.float64)
    measured = np.isfinite(values).any(axis=1)
    if measured.sum() < 5:
        return None
    return FeatureSet(name, frame.loc[measured, "object_id"].tolist(), robust_standardise(values[measured]), parameters=True)


def morphology_features(atlas: Atlas) -> FeatureSet | None:
    """The morphology parameters (morph_*), robustly standardised; None when not measured."""
    return parameter_features(atlas, MORPHOLOGY)


def redshift_residuals(X: np.ndarray, z: np.ndarray, window: int = REDSHIFT_WINDOW) -> np.ndarray:
    """Each row of X minus the mean of the `window` rows nearest in redshift z (itself included); rows without a
    redshift minus the mean of those with one. X unchanged when fewer than 2 x window rows have a redshift."""
    known = np.flatnonzero(np.isfinite(z))
    if len(known) < 2 * window:
        return X
    order = known[np.argsort(z[known], kind="stable")]
    sums = np.vstack([np.zeros((1, X.shape[1])), np.cumsum(X[order], axis=0, dtype=np.float64)])
    lo = np.clip(np.arange(len(order)) - window // 2, 0, len(order) - window)
    out = X - X[known].mean(axis=0)
    out[order] = X[order] - (sums[lo + window] - sums[lo]) / window
    return out.astype(X.dtype, copy=False)


def scored_relative_to_redshift(atlas: Atlas, name: str) -> bool:
    """Whether a feature set's own anomaly scores are relative to redshift: a spectrum space of an atlas whose
    objects have a redshift column."""
    info = list_spaces(atlas).get(name)
    return info is not None and info.modality == "spectrum" and "redshift" in atlas.columns(schema.OBJECTS)


def anomaly_features(atlas: Atlas, fs: FeatureSet) -> FeatureSet:
    """The features a set's own anomaly scores are computed on: a spectrum space's relative to objects at a similar
    catalogue redshift (a spectrum is odd for its redshift, not for being at one: on the demos of seeds 0 and 2 the
    mean share of a planted class in the top 500 of `arp-spectrum` went 0.10 -> 0.25 and 0.15 -> 0.27); any other
    set, and any atlas without a redshift column, as it is. Maps, clusters and the joint features keep `fs`."""
    if not scored_relative_to_redshift(atlas, fs.name):
        return fs
    z = atlas.objects(["object_id", "redshift"]).set_index("object_id")["redshift"].reindex(fs.ids)
    return FeatureSet(fs.name, fs.ids, redshift_residuals(fs.X, z.to_numpy(np.float64)))


def feature_sets(atlas: Atlas, n_components: int = DEFAULT_COMPONENTS) -> dict[str, FeatureSet]:
    """Every space's reduced features, plus each measured parameter set, by name."""
    out = {space: space_features(atlas, space, n_components) for space in list_spaces(atlas)}
    for name in PARAMETER_SETS:
        measured = parameter_features(atlas, name)
        if measured is not None:
            out[name] = measured
    return out


def ranking_set_names(atlas: Atlas, names: list[str]) -> list[str]:
    """Which sets feed the combined ranking, active learning and "more like these".

    A cross-modal (aligned) space keeps only what image and spectrum share, so it is left out
    whenever the atlas has a unimodal space of the same modality: shape is ranked in the
    self-supervised image space, spectra in the spectrum space. The morphology parameters stay.
    A derived space (the shape space) is left out: its parts already rank.
    """
    spaces = list_spaces(atlas)
    unimodal = {info.modality for info in spaces.values() if not info.aligned_group and not info.derived_from}
    return [n for n in names if n not in spaces or not spaces[n].derived_from
            and (not spaces[n].aligned_group or spaces[n].modality not in unimodal)]


def ranking_sets(atlas: Atlas, n_components: int = DEFAULT_COMPONENTS) -> dict[str, FeatureSet]:
    """`feature_sets` restricted to `ranking_set_names`."""
    sets = feature_sets(atlas, n_components)
    return {n: sets[n] for n in ranking_set_names(atlas, list(sets))}


def joint_sets(sets: dict[str, FeatureSet]) -> dict[str, FeatureSet]:
    """The ranking sets whose features enter the joint features: all but the spectral indices (unless alone).

    The indices rank on their own, and their score sits beside the joint features for the learner
    (`active.with_set_scores`); inside the joint kNN the wide emission-line spread of ordinary
    star-forming galaxies took precision@100 of the combined ranking 0.71 -> 0.58 and 0.65 -> 0.56
    (demos of seeds 0 and 2).
    """
    kept = {name: fs for name, fs in sets.items() if name != SPECTRAL_INDICES}
    return kept or dict(sets)


def joint(sets: dict[str, FeatureSet], n_components: int = JOINT_COMPONENTS) -> FeatureSet:
    """All feature sets side by side (first components of each, each set scaled to unit RMS); 0 where a set lacks an object."""
    ids = sorted(set().union(*(fs.ids for fs in sets.values())))
    pos = {oid: i for i, oid in enumerate(ids)}
    blocks = []
    for fs in sets.values():
        block = np.zeros((len(ids), min(n_components, fs.X.shape[1])), np.float32)
        part = fs.X[:, : block.shape[1]]
        block[[pos[o] for o in fs.ids]] = part / max(float(np.sqrt((part**2).sum(axis=1).mean())), 1e-12)
        blocks.append(block)
    return FeatureSet("joint", ids, np.hstack(blocks))
