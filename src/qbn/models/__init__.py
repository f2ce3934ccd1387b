"""Full-precision backbones; the binary policy (qbn.binary.binarize) is applied on top."""

from .cifar_resnet import resnet20, resnet32, resnet56
from .imagenet_resnet import resnet18, resnet34
from .vgg_small import vgg_small

__all__ = ["resnet18", "resnet20", "resnet32", "resnet34", "resnet56", "vgg_small"]
