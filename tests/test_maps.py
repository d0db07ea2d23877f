"""Maps: cached UMAP per space, datashader rendering of all points, samples and lasso/box selections."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend import maps, render
from backend.store import AtlasError, open_atlas
from tests.synthetic import IMAGE, SPECTRUM, build_synthetic

FAST = maps.MapParams(pca_components=8, n_neighbors=10, n_epochs=60)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    atlas = open_atlas(tmp_path_factory.mktemp("maps") / "atlas", create=True)
    objs = build_synthetic(atlas, n=300)
    return atlas, objs


def test_umap_map_is_cached_by_parameters_and_separates_clusters(toy):
    atlas, objs = toy
    frame = maps.compute_map(atlas, IMAGE.name, FAST)
    assert len(frame) == 300 and {"object_id", "x", "y", "params_key"} <= set(frame.columns)
    assert atlas.has_table(f"maps__{IMAGE.name}")
    again = maps.compute_map(atlas, IMAGE.name, FAST)
    np.testing.assert_array_equal(again.sort_values("object_id")["x"], frame.sort_values("object_id")["x"])
    other = maps.compute_map(atlas, IMAGE.name, maps.MapParams(pca_components=8, n_neighbors=10, n_epochs=60, min_dist=0.5))
    assert other["params_key"].iloc[0] != frame["params_key"].iloc[0]
    merged = frame.merge(objs[["object_id", "morphology"]], on="object_id")
    centres = merged.groupby("morphology")[["x", "y"]].mean()
    spread = merged.groupby("morphology")[["x", "y"]].std().to_numpy().mean()
    gaps = [np.linalg.norm(centres.iloc[i] - centres.iloc[j]) for i in range(len(centres)) for j in range(i)]
    assert min(gaps) > spread  # clusters of the latent space stay apart on the map


def test_large_spaces_fit_on_a_sample_and_place_the_rest_beside_their_kind(toy):
    atlas, objs = toy
    frame = maps.compute_map(atlas, IMAGE.name, maps.MapParams(pca_components=8, n_neighbors=10, n_epochs=60, fit_size=150))
    assert len(frame) == 300 and frame["object_id"].is_unique and np.isfinite(frame[["x", "y"]].to_numpy()).all()
    merged = frame.merge(objs[["object_id", "morphology"]], on="object_id")
    centres = merged.groupby("morphology")[["x", "y"]].mean()
    nearest = [centres.index[np.argmin(np.linalg.norm(centres.to_numpy() - row, axis=1))]
               for row in merged[["x", "y"]].to_numpy()]
    assert (np.asarray(nearest) == merged["morphology"].to_numpy()).mean() >= 0.9  # placed points sit with their kind


def test_placing_uses_the_nearest_fitted_rows(monkeypatch):
    sample = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sample_xy = np.array([[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]], np.float32)
    rows = np.array([[0.0, 0.01], [9.99, 0.0]])
    monkeypatch.setattr(maps, "PLACE_K", 1)
    xy = maps.place(object(), sample, sample_xy, rows, metric="euclidean")
    np.testing.assert_allclose(xy, [[1.0, 1.0], [5.0, 5.0]])


def test_render_density_category_and_continuous(toy):
    atlas, objs = toy
    frame = maps.with_objects(atlas, maps.compute_map(atlas, IMAGE.name, FAST), ["morphology", "redshift"])
    dens = render.render(frame, width=120, height=80)
    assert dens.image.shape == (80, 120, 4) and dens.image[..., 3].any()
    assert dens.x_range[0] < frame["x"].min() and dens.x_range[1] > frame["x"].max()
    cat = render.render(frame, "morphology", width=120, height=80)
    assert set(cat.legend) == set(objs["morphology"])
    cont = render.render(frame, "redshift", width=120, height=80)
    assert cont.value_range[0] < cont.value_range[1]
    img = Image.open(io.BytesIO(cont.png()))
    assert img.size == (120, 80) and img.mode == "RGBA"
    # a zoom extent draws only the points inside it, filling more of the canvas
    x0, x1 = frame["x"].quantile([0.4, 0.6])
    y0, y1 = frame["y"].quantile([0.4, 0.6])
    zoom = render.render(frame, width=120, height=80, x_range=(x0, x1), y_range=(y0, y1))
    assert zoom.x_range == (float(x0), float(x1))


def test_render_puts_points_at_the_right_pixels():
    frame = pd.DataFrame({"object_id": ["a", "b"], "x": [0.05, 0.95], "y": [0.95, 0.05]})
    out = render.render(frame, width=20, height=20, x_range=(0, 1), y_range=(0, 1))
    lit = np.argwhere(out.image[..., 3] > 0)
    assert {tuple(p) for p in lit} == {(0, 1), (18, 19)}  # near top-left and bottom-right (row 0 = top)


def test_a_dominant_category_is_grey_and_underneath_the_rare_ones():
    """`rare_class` is empty for 98% of objects: the rare classes must stay visible and labelled."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({"object_id": [f"o{i}" for i in range(n)], "x": rng.uniform(0, 1, n), "y": rng.uniform(0, 1, n),
                          "rare_class": [""] * n})
    frame.loc[:19, "rare_class"] = ["ring"] * 10 + ["lens"] * 10
    out = render.render(frame, "rare_class", width=60, height=60, x_range=(0, 1), y_range=(0, 1))
    assert list(out.legend) == ["lens", "ring", "(none)"] and out.legend["(none)"] == render.DOMINANT_GREY
    grey = tuple(int(render.DOMINANT_GREY[i : i + 2], 16) for i in (1, 3, 5))
    for _, row in frame.iloc[:20].iterrows():  # each rare point's pixel shows its class colour, not the grey
        px = out.image[59 - min(59, int(row["y"] * 60)), min(59, int(row["x"] * 60))]
        want = out.legend[row["rare_class"]]
        assert tuple(px[:3]) != grey and px[3] > 0, (row["object_id"], px, want)
    clusters = pd.DataFrame({"object_id": ["a", "b", "c", "d"], "x": [0.1, 0.2, 0.3, 0.4], "y": [0.1, 0.2, 0.3, 0.4],
                             "cluster": np.array([-1, 3, 12, 3], np.int64)})
    assert render.is_categorical(clusters["cluster"], "cluster") and not render.is_categorical(clusters["x"], "x")
    legend = render.render(clusters, "cluster", width=20, height=20).legend
    assert set(legend) == {"3", "12", "noise"}  # integer codes as labels, -1 named


def test_selection_returns_all_points_not_only_the_sample():
    rng = np.random.default_rng(0)
    n = 50_000
    frame = pd.DataFrame({"object_id": [f"o{i}" for i in range(n)], "x": rng.uniform(-1, 1, n), "y": rng.uniform(-1, 1, n)})
    sample = render.sample_points(frame, cap=1000, keep=["o7"])
    assert 1000 <= len(sample) <= 1001 and "o7" in set(sample["object_id"])
    triangle = [(-1, -1), (1, -1), (-1, 1)]
    ids = render.points_in_polygon(frame, triangle)
    expected = frame.loc[frame["x"] + frame["y"] < 0, "object_id"]
    assert set(ids) == set(expected) and len(ids) > 20_000
    box = render.points_in_box(frame, (0, 0.5), (0.5, 0))
    assert set(box) == set(frame.loc[frame["x"].between(0, 0.5) & frame["y"].between(0, 0.5), "object_id"])
    with pytest.raises(ValueError, match="at least 3"):
        render.points_in_polygon(frame, [(0, 0), (1, 1)])


def test_nearest_point_is_found_among_all_points_in_screen_pixels():
    frame = pd.DataFrame({"object_id": ["a", "b", "c"], "x": [0.0, 10.0, 0.0], "y": [0.0, 0.0, 1.0]})
    # x spans 100 units per pixel, y 0.1: "c" is 10 px away on screen, "b" 0.1 px, although "c" is nearer in data units
    assert render.nearest_point(frame, (9.0, 0.0), (10.0, 0.1)) == ("b", pytest.approx(0.1))
    assert render.nearest_point(frame, (0.0, 0.9), (1.0, 1.0)) == ("c", pytest.approx(0.1))
    assert render.nearest_point(frame.iloc[:0], (0.0, 0.0), (1.0, 1.0)) is None


def test_sky_map_and_missing_map(toy):
    atlas, objs = toy
    sky = maps.sky_map(atlas, ["redshift"])
    assert sky["x"].between(150, 160).all() and len(sky) == 300
    with pytest.raises(AtlasError, match="no map yet"):
        maps.save_map_columns(atlas, SPECTRUM.name, pd.DataFrame({"object_id": ["obj00001"], "cluster": [1]}))
