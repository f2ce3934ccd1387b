"""The network's groups: model (a name and its backbone's constructor arguments, one schema per
family of backbones), binary (which layers are binary and how) and scaling (alpha's scheme)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from .choices import NORMS, STE_MODES
from .fields import one_of


@dataclass
class BackboneSchema:
    _target_: str = MISSING
    norm: str = one_of(NORMS)


@dataclass
class CifarResNetSchema:
    """resnet20/32/56."""

    _target_: str = MISSING
    shortcut: str = MISSING    # A | B (qbn.models checks it)
    init: str = MISSING        # torch | kaiming
    norm: str = one_of(NORMS)


@dataclass
class ImageNetResNetSchema:
    """resnet18/34."""

    _target_: str = MISSING
    stem: str = MISSING        # auto | small | imagenet
    norm: str = one_of(NORMS)


@dataclass
class ModelSchema:
    """vgg_small: a backbone with a norm only."""

    name: str = MISSING
    backbone: BackboneSchema = field(default_factory=BackboneSchema)


@dataclass
class CifarResNetModelSchema(ModelSchema):
    backbone: CifarResNetSchema = field(default_factory=CifarResNetSchema)


@dataclass
class ImageNetResNetModelSchema(ModelSchema):
    backbone: ImageNetResNetSchema = field(default_factory=ImageNetResNetSchema)


@dataclass
class BinarySchema:
    enabled: bool = MISSING
    ste: str = one_of(STE_MODES)
    first_conv: bool = MISSING
    classifier: bool = MISSING
    shortcuts: bool = MISSING
    grouped: bool = MISSING


@dataclass
class ScalingSchema:
    name: str = MISSING
