"""The plugin API: everything a method plugin may import from qbench, in one place.

A plugin imports from here (and from :mod:`qbench.testing` in its tests), never from the host's
internal modules: those can move between releases, this module's names cannot without a
deprecation. ``tests/test_layout.py`` checks that nothing under ``plugins/`` imports anything else
from qbench. See docs/plugin-contract.md for what each name promises.

Each name is imported when first used (:func:`qbench.lazy.lazy_exports`): ``from qbench.api import
Method`` costs milliseconds, ``from qbench.api import WeightQuantizer`` imports torch. So a plugin
whose entry module imports only light names, and its torch code inside its hook implementations,
is listed by ``qbench list methods`` and ``qbench plugins`` without torch (docs/plugin-contract.md).
"""
# ruff: noqa: F401  (the TYPE_CHECKING imports below re-export, through __all__, names ruff cannot see used)
from __future__ import annotations

from typing import TYPE_CHECKING

from qbench import __version__, hookimpl
from qbench.lazy import lazy_exports

#: module -> the names it gives the API, grouped as a plugin author looks for them.
EXPORTS: dict[str, list[str]] = {
    # methods and bits
    "qbench.contract.method": ["Method"],
    "qbench.contract.optim": ["OptimSpec"],
    "qbench.contract.bits": ["BitTarget", "LayerBits"],
    "qbench.contract.layer_info": ["LayerInfo"],
    "qbench.contract.params": ["bind_params"],
    # quantizers
    "qbench.contract.quant.base": ["Quantizer", "WeightQuantizer", "ActivationQuantizer"],
    "qbench.plugin.catalog": ["registered_quantizer"],
    "qbench.contract.quant.layers": ["QuantConv2d", "QuantLinear", "QuantLayer", "quant_layers"],
    "qbench.contract.quant.ste": ["round_ste", "floor_ste", "grad_scale", "lsq_grad_scale", "int_range",
                                  "features_per_sample"],
    "qbench.contract.quant.calibration": ["calibration_sample", "clip_grid", "mse_search"],
    "qbench.contract.quant.levels": ["count_at_or_below", "nearest_level_index", "project_nearest", "project_ste"],
    # a plugin's compiled C kernel (ctypes)
    "qbench.contract.ckernel": ["load_kernel", "optional_kernel", "KernelUnavailable", "KernelFallbackWarning",
                                "kernel_threads", "tracing"],
    # allocators and wrappers
    "qbench.contract.allocation": ["BitAllocator", "AllocationContext", "StepContext"],
    "qbench.contract.budget": ["Budget"],
    "qbench.contract.wrappers": ["TrainingWrapper", "kd_loss"],
    # helpers for allocators and wrappers that probe the model
    "qbench.train.loop": ["frozen_bn_stats"],
    "qbench.train.surgery": ["find_layers", "quantize_model"],
    "qbench.train.audit": ["count_levels"],
    # executors (qbench_register_executors): what they receive and call
    "qbench.run.executors": ["Executor", "locked"],
    "qbench.run.jobs": ["Job"],
    "qbench.run.harness": ["Harness", "FpCheckpoint", "save_state", "load_state"],
    "qbench.run.worker": ["WorkerSpec"],
    "qbench.run.workspace": ["Workspace"],
    # errors
    "qbench.errors": ["QbenchError", "PluginError"],
    # a plugin package's own lazy exports (its __init__.py)
    "qbench.lazy": ["lazy_exports"],
}

__getattr__, __dir__, _names = lazy_exports(__name__, EXPORTS)
__all__ = ["__version__", "hookimpl", *_names]

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly (re-exported: __all__)
    from qbench.contract.allocation import AllocationContext, BitAllocator, StepContext
    from qbench.contract.bits import BitTarget, LayerBits
    from qbench.contract.budget import Budget
    from qbench.contract.ckernel import (
        KernelFallbackWarning,
        KernelUnavailable,
        kernel_threads,
        load_kernel,
        optional_kernel,
        tracing,
    )
    from qbench.contract.layer_info import LayerInfo
    from qbench.contract.method import Method
    from qbench.contract.optim import OptimSpec
    from qbench.contract.params import bind_params
    from qbench.contract.quant.base import ActivationQuantizer, Quantizer, WeightQuantizer
    from qbench.contract.quant.calibration import calibration_sample, clip_grid, mse_search
    from qbench.contract.quant.layers import QuantConv2d, QuantLayer, QuantLinear, quant_layers
    from qbench.contract.quant.levels import count_at_or_below, nearest_level_index, project_nearest, project_ste
    from qbench.contract.quant.ste import (
        features_per_sample,
        floor_ste,
        grad_scale,
        int_range,
        lsq_grad_scale,
        round_ste,
    )
    from qbench.contract.wrappers import TrainingWrapper, kd_loss
    from qbench.errors import PluginError, QbenchError
    from qbench.plugin.catalog import registered_quantizer
    from qbench.run.executors import Executor, locked
    from qbench.run.harness import FpCheckpoint, Harness, load_state, save_state
    from qbench.run.jobs import Job
    from qbench.run.worker import WorkerSpec
    from qbench.run.workspace import Workspace
    from qbench.train.audit import count_levels
    from qbench.train.loop import frozen_bn_stats
    from qbench.train.surgery import find_layers, quantize_model
