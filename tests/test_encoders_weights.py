"""Weights resolution (path > Arp folder > Hugging Face cache, offline-aware) and weights-only loading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

os.environ["HF_HUB_OFFLINE"] = "1"

from embeddings.encoders.weights import (  # noqa: E402
    WeightsNotFoundError,
    file_revision,
    is_offline,
    load_checkpoint,
    opaque_state,
    resolve_weights,
)
from tests.upstream_modules import upstream_module  # noqa: E402

REV = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "arp"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snap = tmp_path / "hub" / "models--org--model" / "snapshots" / REV
    snap.mkdir(parents=True)
    (snap / "w.ckpt").write_bytes(b"hub")
    (tmp_path / "hub" / "models--org--model" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--model" / "refs" / "main").write_text(REV)
    return tmp_path


def test_offline_hub_cache_then_arp_folder_then_explicit_path(places):
    assert is_offline()
    got = resolve_weights("fam", "org/model", "w.ckpt")
    assert got.source == "hf-hub:org/model" and got.path.read_bytes() == b"hub"
    (places / "arp" / "fam").mkdir(parents=True)
    (places / "arp" / "fam" / "w.ckpt").write_bytes(b"arp")
    assert resolve_weights("fam", "org/model", "w.ckpt").path.read_bytes() == b"arp"
    mine = places / "mine.ckpt"
    mine.write_bytes(b"mine")
    got = resolve_weights("fam", "org/model", "w.ckpt", checkpoint=str(mine))
    assert (got.source, got.path.read_bytes()) == ("checkpoint", b"mine")


def test_missing_everywhere_names_file_and_folder(places):
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights("fam", "org/other", "sub/w.pt")
    msg = str(err.value)
    assert "offline" in msg
    assert f"put it at {places / 'arp' / 'fam' / 'sub' / 'w.pt'}" in msg
    assert f"huggingface-cli download org/other sub/w.pt --local-dir {places / 'arp' / 'fam'}" in msg
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_weights("fam", "org/other", "w.pt", checkpoint=str(places / "nope.pt"))


def test_revision_is_content_hash(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 9 + b"y")
    assert file_revision(a).startswith("sha256:") and len(file_revision(a)) == len("sha256:") + 12
    assert file_revision(a) != file_revision(b)


class _Exploit:
    """Unpickling this would run a shell command if the loader ever called real globals."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.check_call, (["touch", str(self.marker)],))


def test_pickled_objects_are_read_as_inert_records(tmp_path):
    marker = tmp_path / "pwned"
    with upstream_module("lightning.fabric.utilities.data") as mod:
        attr_dict = type("AttributeDict", (dict,), {"__module__": mod.__name__})
        mod.AttributeDict = attr_dict
        module_cls = type("SpecFormer", (nn.Module,), {"__module__": "lightning.fabric.utilities.data"})
        mod.SpecFormer = module_cls
        backbone = module_cls()
        backbone._hparams = attr_dict(embed_dim=768, num_heads=6)
        backbone.lin = nn.Linear(2, 2)
        path = tmp_path / "x.ckpt"
        torch.save({"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {"spectrum_encoder": backbone, "evil": _Exploit(marker), "lr": 0.1}}, path)
    with pytest.raises(Exception):  # noqa: B017 - plain weights-only refuses it
        torch.load(path, weights_only=True)
    ckpt = load_checkpoint(path)
    assert not marker.exists()
    torch.testing.assert_close(ckpt["state_dict"]["w"], torch.ones(3))
    hp = ckpt["hyper_parameters"]
    assert hp["lr"] == 0.1
    spec = opaque_state(hp["spectrum_encoder"])
    assert spec["_hparams"] == {"embed_dim": 768, "num_heads": 6}  # dict subclass read as a plain dict


def test_safetensors_and_garbage(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "m.safetensors"))
    assert list(load_checkpoint(tmp_path / "m.safetensors")) == ["a"]
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.ckpt"):
        load_checkpoint(tmp_path / "bad.ckpt")


def test_without_network_a_missing_file_fails_at_once_and_the_cache_still_works(places, monkeypatch):
    """Online mode but no route to the hub: no download attempt (no minute of retries), the same actionable message."""
    from tests.app_atlas import free_port

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("ARP_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert not is_offline()
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights("fam", "org/other", "w.pt")
    msg = str(err.value)
    assert "cannot be reached (no network)" in msg and "huggingface-cli download org/other w.pt" in msg
    got = resolve_weights("fam", "org/model", "w.ckpt")  # already in the Hugging Face cache: found without the hub
    assert got.source == "hf-hub:org/model" and got.path.read_bytes() == b"hub"


def test_every_pretrained_encoder_registers_the_weights_the_precheck_looks_for():
    from embeddings.encoders.hub_weights import DEFAULT_WEIGHTS, default_weights_for
    from embeddings.encoders.registry import available_encoders

    specs = available_encoders()
    for name, weights in DEFAULT_WEIGHTS.items():
        assert specs[name].weights.source == weights.source, name
    assert default_weights_for("astroclip", "spectrum") is DEFAULT_WEIGHTS["astroclip-spectrum"]
    assert default_weights_for("arp-morphology") is None  # the builtin family ships its weights


def test_the_light_encoder_list_matches_the_registry_and_imports_no_torch():
    script = ("import sys\nfrom embeddings.encoders.registry import encoder_modalities\n"
              "light = encoder_modalities()\nprint('torch' in sys.modules)\n"
              "from embeddings.encoders.registry import available_encoders\n"
              "print(light == {n: s.modality for n, s in available_encoders().items()})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.split() == ["False", "True"], done.stdout + done.stderr


def test_cli_embed_with_missing_weights_names_the_file_and_imports_neither_torch_nor_lancedb(tmp_path):
    """The CLI's error says which file to fetch, where to put it, and --checkpoint; it comes before the heavy imports."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ARP_WEIGHTS_DIR": str(tmp_path / "arp"), "HF_HUB_CACHE": str(tmp_path / "hub")}
    script = (
        "import sys\n"
        "sys.argv = ['embeddings', 'embed', '--atlas', sys.argv[1], '--encoder', 'zoobot']\n"
        "from embeddings.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('exit', code, 'torch' in sys.modules, 'lancedb' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "atlas")], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.split() == ["exit", "2", "False", "False"], done.stdout + done.stderr
    folder = tmp_path / "arp" / "zoobot-convnext_nano"
    assert f"put it at {folder / 'model.safetensors'}" in done.stderr
    assert f"huggingface-cli download mwalmsley/zoobot-encoder-convnext_nano model.safetensors --local-dir {folder}" in done.stderr
    assert "--checkpoint PATH" in done.stderr


def test_embed_job_with_missing_weights_fails_at_submit_without_a_process(tmp_path, monkeypatch):
    from backend import jobs
    from backend.store import open_atlas

    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "arp"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    atlas = open_atlas(tmp_path / "atlas", create=True)
    job = jobs.get_job(atlas, jobs.submit(atlas, "embed", {"encoder": "astroclip", "modality": "spectrum"}))
    assert job["status"] == "failed" and not job["pid"]
    assert "WeightsNotFoundError" in job["message"] and "astroclip.ckpt" in job["message"]
    assert f"huggingface-cli download polymathic-ai/astroclip astroclip.ckpt --local-dir {tmp_path / 'arp' / 'astroclip'}" in job["message"]
    missing = jobs.get_job(atlas, jobs.submit(atlas, "embed", {"encoder": "astropt", "checkpoint": str(tmp_path / "no.pt")}))
    assert missing["status"] == "failed" and f"checkpoint {tmp_path / 'no.pt'} does not exist" in missing["message"]
