"""The notebooks run top to bottom against a small demo atlas (so they never rot), and are committed without outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.app_atlas import REPO, shared_app_atlas

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist_without_outputs() -> None:
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        stale = [i for i, c in enumerate(book.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not stale, f"{path.name}: clear the outputs of cells {stale} before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings.encoders.builtin import DEFAULT_WEIGHTS

    if path.stem.startswith("04") and not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"{DEFAULT_WEIGHTS.name} not in the repo yet: `python -m embeddings train-builtin` writes it")
    atlas = tmp_path / "atlas"
    shutil.copytree(shared_app_atlas(tmp_path_factory), atlas)  # notebooks write tags and probes: use a copy
    monkeypatch.setenv("ARP_ATLAS", str(atlas))
    monkeypatch.setenv("ARP_NEW_ATLAS", str(tmp_path / "hdf"))
    monkeypatch.setenv("ARP_DEVICE", "cpu")
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len(outputs) >= 5, "the notebook should show its results"
