"""The shape space joins an image space with the morphology parameters: neighbours follow both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend import shape_space
from backend.features import ranking_set_names
from backend.neighbours import directions, neighbours
from backend.shape_space import SHAPE_COMPONENTS, build_shape_space
from backend.spaces import list_spaces, read_vectors
from backend.store import open_atlas
from tests.synthetic import IMAGE, build_synthetic

ODD = 12  # common objects given an odd shape in their morphology parameters only


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    atlas = open_atlas(tmp_path_factory.mktemp("shape") / "atlas", create=True)
    objs = build_synthetic(atlas, n=300, n_rare=12).set_index("object_id")
    rng = np.random.default_rng(3)
    morph = pd.DataFrame({"object_id": objs.index, "morph_gini": rng.normal(0.5, 0.05, len(objs)),
                          "morph_asymmetry": rng.normal(0.05, 0.02, len(objs)), "morph_m20": rng.normal(-2, 0.2, len(objs))})
    odd = rng.choice(objs.index[~objs["is_rare"]], ODD, replace=False)
    morph.loc[morph["object_id"].isin(odd), "morph_asymmetry"] = rng.normal(0.6, 0.02, ODD)  # tidal features, say
    morph.loc[morph["object_id"] == objs.index[-1], ["morph_gini", "morph_asymmetry", "morph_m20"]] = np.nan  # unmeasured
    atlas.upsert("objects", morph)
    info = build_shape_space(atlas, say=lambda _: None)
    return atlas, objs, list(odd), info


def test_shape_space_is_registered_with_its_sources(shaped):
    atlas, objs, _, info = shaped
    assert info is not None and info.name in list_spaces(atlas) and info.modality == "image"
    assert info.derived_from == IMAGE.name and IMAGE.encoder in info.weights_revision
    assert "morph_*" in info.preprocess_version and info.dim == min(SHAPE_COMPONENTS, IMAGE.dim) + 3
    assert atlas.count(info.table) == len(objs) - 1  # the unmeasured object has no shape vector
    assert info.name not in ranking_set_names(atlas, list(list_spaces(atlas)))  # its parts rank, not it


def test_shape_neighbours_follow_the_morphology_parameters_too(shaped):
    atlas, objs, odd, info = shaped
    in_shape = [np.isin(neighbours(atlas, q, info.name, k=8)["object_id"], odd).mean() for q in odd]
    in_image = [np.isin(neighbours(atlas, q, IMAGE.name, k=8)["object_id"], odd).mean() for q in odd]
    assert np.mean(in_shape) >= 0.6 and np.mean(in_image) <= 0.2  # the image space alone cannot tell them apart
    first = directions(atlas, odd[0])[0]
    assert first.target.name == info.name and first.label == "image -> image (shape)"


def test_rebuilding_replaces_the_space_whole(shaped):
    atlas, objs, _, info = shaped
    again = build_shape_space(atlas, say=lambda _: None)
    assert again == info and atlas.count(info.table) == len(objs) - 1


def test_rebuilding_with_other_settings_replaces_the_former_space(shaped, monkeypatch):
    atlas, objs, _, info = shaped
    monkeypatch.setattr(shape_space, "SHAPE_COMPONENTS", 4)  # as after an upgrade that changed the recipe
    narrower = build_shape_space(atlas, say=lambda _: None)
    assert narrower is not None and narrower.dim == 4 + 3 and list_spaces(atlas)[info.name].dim == 4 + 3
    assert atlas.count(info.table) == len(objs) - 1
    monkeypatch.undo()
    assert build_shape_space(atlas, say=lambda _: None) == info


def test_the_image_components_are_whitened_so_a_minor_direction_counts_as_much_as_the_first(shaped):
    atlas, _, _, info = shaped
    _, vectors = read_vectors(atlas, info.name)
    image_block = vectors[:, : min(SHAPE_COMPONENTS, IMAGE.dim)]
    spread = image_block.std(axis=0)
    assert spread.max() / spread.min() < 1.01  # a plain PCA's later components would be far narrower
