"""Split a timm-style model into its ordered sequence of blocks (or stages).

BWRF replaces blocks of the FP network by the matching blocks of the low-precision network, so
it needs the ordered list of block module names, identical in both (qbench's quantized model
keeps the FP model's module names). Everything that is not a block (stem, stage downsampling
between block lists, final norm, pooling, classifier) stays where the model's own forward puts
it. Recognised layouts, all found by module names, never by model name:

* ResNet style: children ``layer1 .. layerN`` holding the residual blocks (timm ``resnet*``,
  ``resnext*``, qbench's ``resnet20/32/56``). Blocks ``layerK.j``; stages ``layerK``.
* Staged style: ``stages[i].blocks[j]`` (timm ConvNeXt and other staged timm models).
  Blocks ``stages.i.blocks.j``; stages ``stages.i``.
* Staged sequences: ``stages[i][j]`` when every stage is itself a sequence of blocks (timm's
  ByobNet family: MobileViT, RepVGG, ...). Blocks ``stages.i.j``; stages ``stages.i``.
* RegNet style: children ``s1 .. sN`` whose blocks are their children ``b1 .. bM`` (timm
  ``regnet*``). Blocks ``sK.bj``; stages ``sK``.
* Block list: ``blocks[j]`` (ViT, DeiT, ...), or ``blocks[i][j]`` when every entry is itself a
  sequence (EfficientNet / MobileNet style). A flat block list has no stages.
"""
from __future__ import annotations

import re

from torch import nn

from qbench.api import QbenchError

GRANULARITIES = ("block", "stage")

SUPPORTED = ("ResNet-style layer1..layerN of residual blocks (timm resnet*/resnext*, qbench resnet20/32/56); "
             "staged models with stages[i].blocks[j] (timm ConvNeXt and similar) or stages[i][j] (timm ByobNet: "
             "MobileViT, RepVGG); RegNet-style s1..sN of blocks b1..bM; "
             "block lists blocks[j] (ViT, DeiT) or blocks[i][j] (EfficientNet, MobileNet)")

_LAYER = re.compile(r"^layer(\d+)$")
_REG_STAGE = re.compile(r"^s(\d+)$")
_REG_BLOCK = re.compile(r"^b\d+$")
_SEQ = (nn.Sequential, nn.ModuleList)


def model_label(model: nn.Module) -> str:
    """The model's timm name when timm recorded it, and its class."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    return f"{arch!r} ({type(model).__name__})" if arch else type(model).__name__


def _children(prefix: str, seq: nn.Module) -> list[str]:
    return [f"{prefix}.{name}" for name, _ in seq.named_children()]


def _stages(model: nn.Module) -> list[tuple[str, list[str]]] | None:
    """``[(stage_name, [block names])]``; a flat block list is one stage named ``""``."""
    named = dict(model.named_children())
    layers = sorted(((int(m.group(1)), n) for n in named if (m := _LAYER.match(n))), key=lambda t: t[0])
    if layers and all(isinstance(named[n], _SEQ) for _, n in layers):
        return [(n, _children(n, named[n])) for _, n in layers]
    stages = named.get("stages")
    if isinstance(stages, _SEQ) and len(stages) and all(isinstance(getattr(s, "blocks", None), _SEQ)
                                                       for s in stages):
        return [(f"stages.{i}", _children(f"stages.{i}.blocks", s.blocks)) for i, s in enumerate(stages)]
    if isinstance(stages, _SEQ) and len(stages) and all(isinstance(s, _SEQ) for s in stages):
        return [(f"stages.{i}", _children(f"stages.{i}", s)) for i, s in enumerate(stages)]
    regnet = sorted(((int(m.group(1)), n) for n in named if (m := _REG_STAGE.match(n))), key=lambda t: t[0])
    if regnet and all(dict(named[n].named_children()) and all(_REG_BLOCK.match(b) for b, _ in named[n].named_children())
                      for _, n in regnet):
        return [(n, _children(n, named[n])) for _, n in regnet]
    blocks = named.get("blocks")
    if isinstance(blocks, _SEQ) and len(blocks):
        if all(isinstance(b, _SEQ) for b in blocks):
            return [(f"blocks.{i}", _children(f"blocks.{i}", b)) for i, b in enumerate(blocks)]
        return [("", _children("blocks", blocks))]
    return None


def find_blocks(model: nn.Module, granularity: str = "block") -> list[str]:
    """Ordered names of the modules BWRF swaps between the FP and the low-precision model.

    :param granularity: "block" (each residual / transformer block) or "stage" (each stage).
    :raises QbenchError: the model has no recognised block layout, fewer than two blocks (no
        mixed-precision model exists), or no stages when ``granularity="stage"``.
    """
    if granularity not in GRANULARITIES:
        raise QbenchError(f"BWRF granularity {granularity!r} is unknown; use one of {', '.join(GRANULARITIES)}.")
    stages = _stages(model)
    if stages is None:
        raise QbenchError(f"BWRF cannot split model {model_label(model)} into blocks: no recognised block "
                          f"list. Supported families: {SUPPORTED}. Use another training wrapper for this model.")
    if granularity == "stage":
        if len(stages) == 1 and stages[0][0] == "":
            raise QbenchError(f"BWRF granularity 'stage': model {model_label(model)} has a flat block list "
                              "and no stages; use granularity 'block'.")
        names = [s for s, blocks in stages if blocks]
    else:
        names = [b for _, blocks in stages for b in blocks]
    if len(names) < 2:
        raise QbenchError(f"BWRF needs at least two {granularity}s to build a mixed-precision model; model "
                          f"{model_label(model)} has {len(names)}. Use granularity 'block' or another wrapper.")
    return names
