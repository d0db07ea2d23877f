"""Probes predict columns from frozen vectors and report held-out metrics; models round-trip without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from backend import probes
from backend.store import AtlasError
from tests.synthetic import IMAGE, build_synthetic


@pytest.fixture
def toy(atlas):
    build_synthetic(atlas, n=400)
    return atlas


@pytest.mark.parametrize("method", ["knn", "linear", "mlp"])
def test_redshift_probe_beats_the_mean_and_reports_outliers(toy, method):
    out = probes.train_probe(toy, IMAGE.name, "redshift", method, epochs=15)
    m = out["metrics"]
    assert out["task"] == "regression"
    assert m["r2"] > 0.8, m
    assert {"mae", "outlier_fraction", "n_test", "n_train"} <= set(m)
    preds = probes.predictions(toy, out["probe_id"])
    assert len(preds) == 400 and set(preds["split"]) == {"train", "test"}
    again = probes.predict(toy, out["probe_id"], list(preds["object_id"][:50]))
    np.testing.assert_allclose(again["prediction"], preds["prediction"][:50], rtol=1e-3, atol=1e-3)
    if method == "knn":
        assert np.isfinite(preds["uncertainty"]).all()


@pytest.mark.parametrize("method", ["knn", "linear", "mlp"])
def test_morphology_classifier_with_confusion_matrix(toy, method):
    out = probes.train_probe(toy, IMAGE.name, "morphology", method, split=0.3, epochs=15)
    m = out["metrics"]
    assert out["task"] == "classification"
    assert m["accuracy"] > 0.9 and m["f1_macro"] > 0.6
    cm = np.array(m["confusion"])
    assert cm.shape == (len(m["labels"]),) * 2 and cm.sum() == m["n_test"]
    again = probes.predict(toy, out["probe_id"])
    stored = probes.predictions(toy, out["probe_id"]).set_index("object_id")["prediction"]
    assert (again.set_index("object_id")["prediction"] == stored.loc[again["object_id"]].to_numpy()).mean() > 0.99


def test_probe_is_listed_and_bad_columns_are_named(toy):
    probes.train_probe(toy, IMAGE.name, "redshift", "linear")
    listed = probes.list_probes(toy)
    assert list(listed["target"]) == ["redshift"] and "r2" in listed["metrics"][0]
    with pytest.raises(AtlasError, match="no column 'stellar_mass_typo'"):
        probes.train_probe(toy, IMAGE.name, "stellar_mass_typo")
