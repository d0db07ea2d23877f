"""Encoder registry: adding an encoder is one decorated factory function (timm-style).

The decorator records the family, modality and default weights of a factory and stamps family, modality and
(unless the encoder names a variant itself) name onto every encoder the factory builds.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from embeddings.encoders.base import Encoder

EncoderFactory = Callable[..., Encoder]


@dataclass(frozen=True)
class WeightsConfig:
    """The default weights of a registered encoder."""

    source: str  # `hf://<repo>/<file>` or a path inside this repository
    dim: int  # width of the vectors the default weights produce


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: family, modality, factory, default weights and a one-line description."""

    name: str  # registry name, also the `<encoder>` part of the space's table name
    family: str  # model family; one family may register one encoder per modality
    modality: str  # "image" | "spectrum"
    factory: EncoderFactory
    weights: WeightsConfig
    description: str


_REGISTRY: dict[str, EncoderSpec] = {}

# Modules whose import registers encoders; imported lazily so the app never pays for torch.
_ENCODER_MODULES: tuple[str, ...] = (
    "embeddings.encoders.builtin",
    "embeddings.encoders.astroclip",
    "embeddings.encoders.zoobot",
    "embeddings.encoders.astropt",
    "embeddings.encoders.openclip",
)


def register_encoder(
    family: str, *, modality: str, weights: WeightsConfig, description: str = "", name: str | None = None
) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register `factory(checkpoint: str | None = None, **kw) -> Encoder` as `<family>-<modality>`.

    `name` overrides the registry name (families registered before modalities were part of names: `zoobot`).
    """
    spec_name = name or f"{family}-{modality}"

    def wrap(factory: EncoderFactory) -> EncoderFactory:
        @functools.wraps(factory)
        def build(*args: object, **kwargs: object) -> Encoder:
            encoder = factory(*args, **kwargs)
            encoder.family, encoder.modality = family, modality
            if not getattr(encoder, "name", ""):
                encoder.name = spec_name
            return encoder

        doc = description or (factory.__doc__ or "").strip()
        _REGISTRY[spec_name] = EncoderSpec(spec_name, family, modality, build, weights, doc)
        return build

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


def encoder_modalities() -> dict[str, str]:
    """Registered encoder name -> modality, without importing torch (the builtin family and the listed pretrained
    encoders of `hub_weights`): what a form needs to offer encoders."""
    from embeddings.encoders import builtin  # noqa: F401 - registers the builtin family (numpy only)
    from embeddings.encoders.hub_weights import PRETRAINED_MODALITIES

    return dict(sorted({**{name: spec.modality for name, spec in _REGISTRY.items()}, **PRETRAINED_MODALITIES}.items()))


def find_encoder(name: str, modality: str | None = None) -> EncoderSpec:
    """A registered encoder by name, or by family + modality (`arp-pair` + `image`); KeyError/ValueError when not."""
    specs = available_encoders()
    if name in specs:
        spec = specs[name]
        if modality and spec.modality != modality:
            raise ValueError(f"encoder {name!r} embeds {spec.modality}, not {modality}")
        return spec
    family = [s for s in specs.values() if s.family == name and (modality is None or s.modality == modality)]
    if len(family) == 1:
        return family[0]
    if family:
        raise KeyError(f"encoder family {name!r} has several modalities ({', '.join(s.modality for s in family)}): give one")
    raise KeyError(f"unknown encoder {name!r}; available: {', '.join(specs)}")


def get_encoder(name: str, **kwargs: object) -> Encoder:
    """Build a registered encoder (kwargs go to its factory, e.g. `checkpoint=PATH`)."""
    specs = available_encoders()
    if name not in specs:
        raise KeyError(f"unknown encoder {name!r}; available: {', '.join(specs)}")
    return specs[name].factory(**kwargs)
