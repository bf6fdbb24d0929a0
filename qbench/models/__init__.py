"""Models come from timm; qbench registers its small-image models into timm's own registry."""
from __future__ import annotations

from typing import Any

from torch import nn

from qbench.errors import QbenchError, UnknownNameError
from qbench.models import cifar_resnet  # noqa: F401  (importing qbench.models registers resnet20 & co. into timm)
from qbench.models.caches import clear_caches_after_forward


def check_model_name(name: str) -> None:
    """Raise the "Unknown model ... Did you mean" error for names timm does not know."""
    import timm

    if ":" in name:  # the user's own factory, pkg.module:fn (qbench.models.user)
        from qbench.models.user import load_ref

        load_ref(name, "--model")
        return
    if not timm.is_model(name):
        raise UnknownNameError("model", name, model_names(),
                               "Any timm model name works; `qbench list models` shows qbench's own.")


def create_model(name: str, num_classes: int, in_chans: int, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` adapted to a dataset's channels and classes, never pretrained; a
    ``pkg.module:factory`` name is the user's own code (:mod:`qbench.models.user`).

    Raises a :class:`QbenchError` naming the model when timm does not know it or rejects the
    keyword arguments.
    """
    import timm

    if ":" in name:
        from qbench.models.user import build_user_model

        return clear_caches_after_forward(build_user_model(name, num_classes, in_chans, **kwargs))
    check_model_name(name)
    try:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise QbenchError(f"Model {name!r} rejected its arguments {kwargs}: {exc}. "
                          "Fix the model's kwargs in the suite file.") from None
    return clear_caches_after_forward(model)  # eval-time caches would break deep copies


def model_names() -> list[str]:
    """Every model name timm knows, qbench's own included."""
    import timm

    return timm.list_models()
