"""Encoder registry: adding an encoder is one decorated factory function (timm-style)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from embeddings.encoders.base import Encoder

EncoderFactory = Callable[..., Encoder]


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: its factory and what a user needs to know before loading it."""

    name: str
    modality: str
    factory: EncoderFactory
    description: str
    default_source: str  # hub id / file the weights come from by default


_REGISTRY: dict[str, EncoderSpec] = {}

# Modules whose import registers encoders; imported lazily so the app never pays for torch.
_ENCODER_MODULES: tuple[str, ...] = (
    "embeddings.encoders.builtin",
    "embeddings.encoders.astroclip",
    "embeddings.encoders.zoobot",
    "embeddings.encoders.astropt",
    "embeddings.encoders.openclip",
)


def register_encoder(name: str, *, modality: str, description: str = "", default_source: str = "") -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register `factory(checkpoint: str | None = None, **kw) -> Encoder` under `name`."""

    def wrap(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY[name] = EncoderSpec(name, modality, factory, description or (factory.__doc__ or "").strip(), default_source)
        return factory

    return wrap


def _load_all() -> None:
    for module in _ENCODER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def available_encoders() -> dict[str, EncoderSpec]:
    """All registered encoders by name."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_encoder(name: str, **kwargs) -> Encoder:
    """Build a registered encoder (kwargs go to its factory, e.g. `checkpoint=PATH`)."""
    specs = available_encoders()
    if name not in specs:
        raise KeyError(f"unknown encoder {name!r}; available: {', '.join(specs)}")
    return specs[name].factory(**kwargs)
