"""CIFAR-style ResNets (He et al., 2016, section 4.2): ResNet-20/32/56, registered into timm.

Most QAT papers report ResNet-20 on small images. Layout mirrors timm's ResNet names (conv1,
bn1, act1, layer1..3, global_pool, fc) so tools that split timm ResNets into stages and blocks
(BWRF) handle it the same way. Shortcuts that change shape use a 1x1 conv + BN ("option B").
"""
from __future__ import annotations

from typing import Any

import torch
from timm.models import register_model
from torch import Tensor, nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class CifarResNet(nn.Module):
    """A 3-stage ResNet for 32x32 (or smaller) inputs with timm's model API."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_chans: int = 3, width: int = 16,
                 drop_rate: float = 0.0, **_: Any) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        planes, inplanes, stages = width, width, []
        for i in range(3):
            blocks = [BasicBlock(inplanes, planes, 1 if i == 0 else 2)]
            blocks += [BasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes, planes = planes, planes * 2
        self.layer1, self.layer2, self.layer3 = stages
        self.num_features = inplanes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = torch.flatten(self.global_pool(x), 1)
        if self.drop_rate:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg() -> dict[str, Any]:
    return {"num_classes": 10, "input_size": (3, 32, 32), "classifier": "fc", "first_conv": "conv1"}


def _make(depth: int, pretrained: bool, kwargs: dict[str, Any]) -> CifarResNet:
    if pretrained:
        raise ValueError("CIFAR ResNets have no pretrained weights in qbench; the suite trains the FP model.")
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    model = CifarResNet(depth=depth, **kwargs)
    model.default_cfg = model.pretrained_cfg = _cfg()
    return model


@register_model
def resnet20(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """CIFAR-style ResNet-20 (0.27 M parameters), the usual QAT model on small images."""
    return _make(20, pretrained, kwargs)


@register_model
def resnet32(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """CIFAR-style ResNet-32."""
    return _make(32, pretrained, kwargs)


@register_model
def resnet56(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """CIFAR-style ResNet-56."""
    return _make(56, pretrained, kwargs)


CIFAR_MODELS = {"resnet20": resnet20, "resnet32": resnet32, "resnet56": resnet56}
