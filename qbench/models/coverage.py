"""The coverage registry: timm architectures qbench is verified on, with small-input kwargs.

Each entry is one timm model name, the family it stands for, constructor kwargs that shrink it
(fewer blocks, a small ``img_size``) so a check runs in seconds on a CPU, and the input size it
runs at. ``qbench models --check`` runs every entry through forward, backward, eval, the identity
property and the audit, for every installed method; docs/models.md is generated from it.

:data:`XFAILS` lists the (model, method) combinations that cannot work, each with its reason:
a combination that fails without an entry here is a failure, never a silent skip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ZooModel:
    """A registry entry: ``timm.create_model(name, num_classes=..., in_chans=3, **kwargs)`` on
    ``(batch, 3, img, img)`` inputs."""

    name: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    img: int = 32
    note: str = ""  # what the entry exercises (a layer type, a cache, attention)


REGISTRY: tuple[ZooModel, ...] = (
    ZooModel("resnet18", "ResNet", {"layers": (1, 1, 1, 1)}),
    ZooModel("resnet20", "ResNet (CIFAR)", {}, note="qbench's own, registered into timm"),
    ZooModel("resnetv2_50x1_bit", "ResNetV2 / BiT", {},
             note="StdConv2d: standardises its weight in its forward"),
    ZooModel("nf_regnet_b0", "NFNet", note="ScaledStdConv2d: standardised weight times a learned gain"),
    ZooModel("mobilenetv2_050", "MobileNetV2"),
    ZooModel("mobilenetv3_small_050", "MobileNetV3", note="hard-swish, squeeze-excite"),
    ZooModel("efficientnet_b0", "EfficientNet"),
    ZooModel("tf_efficientnet_b0", "EfficientNet (tf_)", note="Conv2dSame: dynamic 'same' padding"),
    ZooModel("convnext_atto", "ConvNeXt", {"depths": (1, 1, 1, 1)}),
    ZooModel("regnetx_002", "RegNet"),
    ZooModel("densenet121", "DenseNet", {"block_config": (1, 1, 1, 1)}),
    ZooModel("vit_tiny_patch16_224", "ViT", {"img_size": 32, "patch_size": 8, "depth": 2},
             note="attention: F.scaled_dot_product_attention"),
    ZooModel("deit_tiny_distilled_patch16_224", "DeiT", {"img_size": 32, "patch_size": 8, "depth": 2},
             note="two heads (class and distillation tokens)"),
    ZooModel("swin_tiny_patch4_window7_224", "Swin",
             {"img_size": 32, "window_size": 4, "depths": (1, 1, 1, 1), "embed_dim": 32, "num_heads": (1, 2, 4, 8)},
             note="windowed attention with a relative position bias"),
    ZooModel("mixer_s16_224", "MLP-Mixer", {"img_size": 32}),
    ZooModel("ghostnet_050", "GhostNet"),
    ZooModel("repvgg_a0", "RepVGG", note="ByobNet rep-VGG blocks"),
    ZooModel("mobilevit_xxs", "MobileViT", img=64, note="attention as explicit matmuls"),
    ZooModel("levit_128s", "LeViT", {"img_size": 64}, img=64,
             note="eval-time attention-bias cache; Linear+BN layers"),
    ZooModel("poolformer_s12", "PoolFormer"),
    ZooModel("efficientformer_l1", "EfficientFormer", {"depths": (1, 1, 1, 1)}, img=224,
             note="its attention bias is fixed at 7x7 tokens: 224x224 inputs only"),
    ZooModel("efficientformerv2_s0", "EfficientFormer", {"img_size": 64}, img=64,
             note="attention bias sized by img_size; eval-time bias cache"),
    ZooModel("fastvit_t8", "FastViT", {"layers": (1, 1, 1, 1)}),
    ZooModel("inception_v3", "Inception", img=75, note="smallest input its stem accepts"),
    ZooModel("hrnet_w18_small", "HRNet"),
    ZooModel("dla46_c", "DLA"),
)


#: (model, method) -> why that combination cannot work; "*" matches every model or method.
XFAILS: dict[tuple[str, str], str] = {}


def xfail_reason(model: str, method: str) -> str | None:
    """Why ``method`` cannot run on ``model`` (None when it must work)."""
    for key in ((model, method), (model, "*"), ("*", method)):
        if key in XFAILS:
            return XFAILS[key]
    return None


def get(name: str) -> ZooModel:
    for m in REGISTRY:
        if m.name == name:
            return m
    raise KeyError(name)


ATTENTION_DOC = """\
## Attention: what each setting quantizes

Every Conv2d / Linear layer the model runs (first and last by the suite's `first_last` rule) has
its weight and its input quantized, whatever the setting. Subclasses (timm's `Conv2dSame`,
`StdConv2d`, `ScaledStdConv2d`, `Linear`) keep their own forward: the weight quantized is the one
they compute with (after standardisation), their padding is theirs.

The other matmuls, found by a TorchFunctionMode during a forward pass (`qbench/train/matmul.py`),
are named `<module>:<op><index>` after the module whose own forward makes them:

* `attention = "fp"` (the default): quantized are the Conv2d / Linear layers' weights and inputs
  only. Matmuls between two activations (`torch.matmul`, `@`, `bmm`, `baddbmm`, `einsum`: QK^T
  and AV) and `F.scaled_dot_product_attention` (fused) run FP and are counted at 32 x 32 bits.
* `attention = "quantized"`: also both inputs of every matmul between two activations, by the
  method's activation quantizer at the job's activation bits (one quantizer per input and site);
  `F.scaled_dot_product_attention` then runs as softmax(q k^T * scale + mask) v with q, k, v and
  the softmax output quantized, and its QK^T and AV are counted at their inputs' bits.
* Under both: a matmul with a weight (`x @ W`) and `F.linear` / `F.conv2d` calls made outside a
  Linear / Conv2d module's forward (e.g. `nn.MultiheadAttention`'s projections) stay FP and are
  counted at 32 x 32 bits.

BitOPs (the row's `gbitops`) count every such op: MACs per sample x bits of its left input x bits
of its right input; the per-layer audit lists them with role `matmul`. A weight-only method
(no activation quantizer) leaves them FP under either setting. The row's `attention` field
says which setting the suite used.
"""


def registry_markdown() -> str:
    """The generated top of docs/models.md: the registry, the xfails and the attention settings."""
    lines = ["# Models: the coverage registry", "",
             "Generated from `qbench/models/coverage.py`; the measured matrix at the end is written by",
             "`qbench models --check --doc docs/models.md`. A test keeps this page in sync with the registry.", "",
             f"{len(REGISTRY)} timm architectures, each built with `timm.create_model(name, num_classes=10, "
             "in_chans=3, **kwargs)` and checked on `(2, 3, img, img)` random inputs:", "",
             "| model | family | kwargs | img | what it exercises |", "|---|---|---|---|---|"]
    for m in REGISTRY:
        kw = ", ".join(f"{k}={v}" for k, v in m.kwargs.items()) or "-"
        lines.append(f"| `{m.name}` | {m.family} | {kw} | {m.img} | {m.note or '-'} |")
    lines += ["", "## Known failures (xfail)", ""]
    if XFAILS:
        lines += ["| model | method | reason |", "|---|---|---|"]
        lines += [f"| {mo} | {me} | {why} |" for (mo, me), why in sorted(XFAILS.items())]
    else:
        lines.append("None: every model x method combination must pass.")
    return "\n".join(lines) + "\n\n" + ATTENTION_DOC


MATRIX_HEADING = "## Measured matrix"
