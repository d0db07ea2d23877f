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


@pytest.mark.parametrize("method", sorted(probes.PROBES))
@pytest.mark.parametrize("target", ["morphology", "is_rare"])
def test_saved_probe_reloads_and_predicts_the_labels_of_the_fitted_one(toy, method, target):
    out = probes.train_probe(toy, IMAGE.name, target, method, split=0.3, epochs=10)
    stored = probes.predictions(toy, out["probe_id"]).set_index("object_id")
    reloaded, meta = probes.load_estimator(toy, out["probe_id"])
    assert type(reloaded) is probes.PROBES[method] and meta["method"] == method
    again = probes.predict(toy, out["probe_id"]).set_index("object_id")
    assert (again["prediction"] == stored.loc[again.index, "prediction"]).all()
    np.testing.assert_allclose(again["uncertainty"], stored.loc[again.index, "uncertainty"], atol=1e-6)


@pytest.mark.parametrize("method", sorted(probes.PROBES))
def test_estimators_fit_predict_and_round_trip_through_tensors(method):
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 4, (3, 8))
    label = rng.integers(0, 3, 300)
    X = (centres[label] + rng.normal(0, 1, (300, 8))).astype(np.float32)
    y = np.array(["a", "b", "c"])[label]
    fitted = probes.PROBES[method]("classification", epochs=20) if method == "mlp" else probes.PROBES[method]("classification")
    fitted = fitted.fit(X[:200], y[:200])
    assert (fitted.predict(X[200:]) == y[200:]).mean() > 0.9
    tensors, meta = fitted.to_tensors()
    assert all(isinstance(v, np.ndarray) for v in tensors.values())
    reloaded = probes.Probe.from_tensors(tensors, meta).set_training_rows(X[:200], y[:200])
    assert (reloaded.predict(X[200:]) == fitted.predict(X[200:])).all()
