"""The plugin API: everything a method plugin may import from qbench, in one place.

A plugin imports from here (and from :mod:`qbench.testing` in its tests), never from the host's
internal modules: those can move between releases, this module's names cannot without a
deprecation. ``tests/test_plugin_api.py`` checks that nothing under ``plugins/`` imports anything
else from qbench. See docs/plugin-contract.md for what each name promises.
"""
from __future__ import annotations

from qbench import __version__, hookimpl
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

__all__ = [
    "__version__", "hookimpl",
    # methods and bits
    "Method", "OptimSpec", "BitTarget", "LayerBits", "LayerInfo", "bind_params",
    # quantizers
    "Quantizer", "WeightQuantizer", "ActivationQuantizer", "registered_quantizer",
    "QuantConv2d", "QuantLinear", "QuantLayer", "quant_layers",
    "round_ste", "floor_ste", "grad_scale", "lsq_grad_scale", "int_range", "features_per_sample",
    "calibration_sample", "clip_grid", "mse_search",
    "count_at_or_below", "nearest_level_index", "project_nearest", "project_ste",
    # a plugin's compiled C kernel (ctypes)
    "load_kernel", "optional_kernel", "KernelUnavailable", "KernelFallbackWarning", "kernel_threads", "tracing",
    # allocators and wrappers
    "BitAllocator", "AllocationContext", "StepContext", "Budget", "TrainingWrapper", "kd_loss",
    # helpers for allocators and wrappers that probe the model
    "frozen_bn_stats", "find_layers", "quantize_model", "count_levels",
    # executors (qbench_register_executors): what they receive and call
    "Executor", "Job", "Harness", "FpCheckpoint", "WorkerSpec", "Workspace", "locked", "save_state", "load_state",
    # errors
    "QbenchError", "PluginError",
]
