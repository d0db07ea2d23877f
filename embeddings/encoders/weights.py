"""Find pretrained weights (explicit path, Arp's weights folder, or the Hugging Face cache) and load them weights-only.

Resolution order: `checkpoint=` path -> `$ARP_WEIGHTS_DIR/<family>/<file>` (default `~/.cache/arp/weights`) ->
the Hugging Face cache -> `huggingface_hub.hf_hub_download` (only when online and the hub answers within 1.5 s, so
a machine without network fails at once). When nothing is found the error says which file to fetch and where to put it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


class WeightsNotFoundError(FileNotFoundError):
    """No local checkpoint and no way to download it; the message says what to fetch and where to put it."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A checkpoint file on disk and where it came from."""

    path: Path
    source: str  # "checkpoint", "arp-cache" or "hf-hub:<repo>"


def arp_weights_dir() -> Path:
    """Arp's own weights folder (`$ARP_WEIGHTS_DIR`, default `~/.cache/arp/weights`)."""
    return Path(os.environ.get("ARP_WEIGHTS_DIR") or Path.home() / ".cache" / "arp" / "weights").expanduser()


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE or ARP_OFFLINE is set: never touch the network."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "ARP_OFFLINE"))


def hub_endpoint() -> str:
    """The Hugging Face endpoint downloads would use (`$HF_ENDPOINT`, default https://huggingface.co)."""
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable(timeout_s: float = 1.5) -> bool:
    """Whether a TCP connection to the hub endpoint (or the HTTPS proxy) opens within `timeout_s`, DNS included.

    Checked before any download so that a machine without network fails at once instead of retrying for a minute.
    """
    import socket
    import threading
    from urllib.parse import urlsplit

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    parts = urlsplit(proxy if proxy else hub_endpoint())
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, name="arp-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)  # getaddrinfo has no timeout of its own
    return bool(result and result[0])


def fetch_hint(family: str, repo_id: str, filename: str) -> str:
    """The exact command that puts `filename` where Arp looks for it."""
    folder = arp_weights_dir() / family
    return (
        f"fetch `{filename}` from https://huggingface.co/{repo_id} and put it at {folder / filename}:\n"
        f"    huggingface-cli download {repo_id} {filename} --local-dir {folder}\n"
        f"or pass checkpoint=PATH (CLI: --checkpoint PATH) pointing at that file."
    )


def weights_on_disk(
    family: str, repo_id: str, filename: str, checkpoint: str | os.PathLike | None = None, revision: str | None = None
) -> ResolvedWeights | None:
    """`filename` from the checkpoint path, Arp's folder or the Hugging Face cache; None when it is in none of them."""
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            path = path / filename if (path / filename).exists() else path / Path(filename).name
        if not path.is_file():
            raise WeightsNotFoundError(f"checkpoint {path} does not exist; " + fetch_hint(family, repo_id, filename))
        return ResolvedWeights(path.resolve(), "checkpoint")
    local = arp_weights_dir() / family / filename
    if local.is_file():
        return ResolvedWeights(local.resolve(), "arp-cache")
    from huggingface_hub import try_to_load_from_cache

    cache_dir = os.environ.get("HF_HUB_CACHE") or None  # read now, not at import time
    cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    if isinstance(cached, str) and Path(cached).is_file():
        return ResolvedWeights(Path(cached), f"hf-hub:{repo_id}")
    return None


def _offline_error(family: str, repo_id: str, filename: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"{family} weights not found: offline (HF_HUB_OFFLINE/ARP_OFFLINE set) and not in the Hugging Face cache; "
        + fetch_hint(family, repo_id, filename)
    )


def _unreachable_error(family: str, repo_id: str, filename: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"{family} weights not found: not in the Hugging Face cache and {hub_endpoint()} cannot be reached "
        "(no network); " + fetch_hint(family, repo_id, filename)
    )


def local_weights(
    family: str, repo_id: str, filename: str, checkpoint: str | os.PathLike | None = None, revision: str | None = None
) -> ResolvedWeights | None:
    """The weights file on disk, or None when only a download can get it (online, hub reachable); never downloads.

    Raises WeightsNotFoundError at once when the file is missing and no download can succeed (offline, no network).
    """
    found = weights_on_disk(family, repo_id, filename, checkpoint, revision)
    if found is not None:
        return found
    if is_offline():
        raise _offline_error(family, repo_id, filename)
    if not hub_reachable():
        raise _unreachable_error(family, repo_id, filename)
    return None


def resolve_weights(
    family: str, repo_id: str, filename: str, checkpoint: str | os.PathLike | None = None, revision: str | None = None
) -> ResolvedWeights:
    """Locate `filename` of hub repo `repo_id` for encoder family `family` (see module doc for the order)."""
    found = local_weights(family, repo_id, filename, checkpoint, revision)
    if found is not None:
        return found
    from huggingface_hub import hf_hub_download

    try:
        got = hf_hub_download(repo_id=repo_id, filename=filename, revision=revision,
                              cache_dir=os.environ.get("HF_HUB_CACHE") or None)
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes the same actionable message
        raise WeightsNotFoundError(
            f"{family} weights not found: download failed ({type(exc).__name__}); " + fetch_hint(family, repo_id, filename)
        ) from exc
    return ResolvedWeights(Path(got), f"hf-hub:{repo_id}")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (read in 4 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_revision(path: str | os.PathLike, n: int = 12) -> str:
    """`sha256:<first n hex>` of a file: the weights revision recorded with every vector."""
    return f"sha256:{file_sha256(path)[:n]}"


class _Opaque(dict):
    """Inert stand-in for any class a pickled checkpoint names besides tensors: records arguments, runs nothing."""

    def __new__(cls, *args, **kwargs):
        return dict.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _record_type(name: str) -> type:
    """A distinct inert `_Opaque` subclass per pickled global, so an unpickling error can name the global."""
    return type("Record", (_Opaque,), {"__qualname__": f"Record[{name}]", "global_name": name})


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint weights-only: safetensors, or `torch.load(weights_only=True)`.

    Lightning/nanoGPT checkpoints may pickle Python objects beside the tensors (hyper-parameter modules,
    config classes). Those classes are never imported or run: each is allowlisted as an inert record
    (dict subclasses such as Lightning's AttributeDict as a plain dict), so only tensors and plain
    containers come back.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    log.info("checkpoint %s pickles %d non-tensor globals, read as inert records: %s", path, len(names), names)
    as_dict: set[str] = set()
    for _ in range(len(names) + 1):
        stand_ins = [(dict if n in as_dict else _record_type(n), n) for n in names]
        try:
            with torch.serialization.safe_globals(stand_ins):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"SETITEMS? for .*Record\[([^\]]+)\]", str(exc))
            if not found or found.group(1) in as_dict:
                raise ValueError(f"cannot read checkpoint {path} weights-only: {exc}") from exc
            as_dict.add(found.group(1))  # a dict subclass: filled item by item, so read it as a plain dict
    raise ValueError(f"cannot read checkpoint {path} weights-only")


def opaque_state(obj: object) -> dict:
    """The recorded attributes of an `_Opaque` record (or the dict itself for plain dicts)."""
    if isinstance(obj, _Opaque):
        state = getattr(obj, "state", None)
        return state if isinstance(state, dict) else {}
    return obj if isinstance(obj, dict) else {}


def strip_prefix(state_dict: dict, prefix: str) -> dict:
    """Keys under `prefix` with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
