"""The qbench plugin contract: every hook a plugin can implement.

Registration hooks receive a ``register`` callback (as in llm and tox 4) and call it once per
thing they provide; lifecycle hooks observe a run (for loggers and trackers) and must not change
results. Implement a hook with ``@qbench.hookimpl`` on a module or object listed under the
``qbench`` entry point group. Every hook here is documented in docs/plugin_hooks.md (a test keeps
the two in sync).
"""
from __future__ import annotations

from typing import Any, Callable

import pluggy

#: Lifecycle hooks receive the runner's objects: a job (:class:`qbench.run.jobs.Job`: suite,
#: dataset, model, method, bits, seed, ``key``, ``label``) and a suite (:class:`qbench.run.suite.Suite`).
#: They are typed loosely here so that the plugin machinery never imports the runner above it.
Job = Any
Suite = Any

hookspec = pluggy.HookspecMarker("qbench")


# --- registration -------------------------------------------------------------------------------

@hookspec
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    """Register weight and activation quantizers.

    :param register: ``register(name, factory, kind=None, description="")``. ``factory(bits,
        layer, **params)`` returns a :class:`qbench.contract.quant.WeightQuantizer` or
        :class:`qbench.contract.quant.ActivationQuantizer`; ``kind`` ("weight" / "activation") defaults
        to ``factory.kind``.
    """


@hookspec
def qbench_register_bit_allocators(register: Callable[..., None]) -> None:
    """Register per-layer bit-width policies.

    :param register: ``register(name, factory, description="")``; ``factory(**params)`` returns a
        :class:`qbench.contract.allocation.BitAllocator`.
    """


@hookspec
def qbench_register_training_wrappers(register: Callable[..., None]) -> None:
    """Register what wraps the QAT training step (plain loss, distillation, block replacement).

    :param register: ``register(name, factory, description="")``; ``factory(**params)`` returns a
        :class:`qbench.contract.wrappers.TrainingWrapper`.
    """


@hookspec
def qbench_register_methods(register: Callable[..., None]) -> None:
    """Register named methods composing a quantizer, an allocator and a wrapper.

    :param register: ``register(method)`` with a :class:`qbench.contract.method.Method`.
    """


@hookspec
def qbench_register_datasets(register: Callable[..., None]) -> None:
    """Register datasets.

    :param register: ``register(name, factory, description="")``; ``factory(data_dir, **options)``
        returns a :class:`qbench.data.DataBundle`.
    """


@hookspec
def qbench_register_models(register: Callable[..., None]) -> None:
    """Announce models a plugin added to timm's registry (with ``timm.models.register_model``).

    :param register: ``register(name, description="")``; the model itself is built with
        ``timm.create_model(name)``, so any timm name works without registering here.
    """


@hookspec
def qbench_register_executors(register: Callable[..., None]) -> None:
    """Register executors that run a list of jobs.

    :param register: ``register(name, factory, description="")``; ``factory()`` returns a
        :class:`qbench.run.executors.Executor`: ``run(jobs, harness)`` yielding each job's row.
    """


@hookspec
def qbench_register_suites(register: Callable[..., None]) -> None:
    """Register suite recipe files (TOML).

    :param register: ``register(name, path)``.
    """


# --- lifecycle ----------------------------------------------------------------------------------

@hookspec
def qbench_before_suite_run(suite: Suite, jobs: list[Job]) -> None:
    """Called once before a run starts, with the jobs still to run.

    :param suite: the suite being run.
    :param jobs: the jobs not yet finished (finished ones are skipped).
    """


@hookspec
def qbench_before_training_run(job: Job) -> None:
    """Called before a job trains (FP or QAT).

    :param job: the job about to run.
    """


@hookspec
def qbench_after_epoch_completed(job: Job, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
    """Called after every training epoch.

    :param job: the running job.
    :param phase: "fp" for the FP checkpoint, "qat" for quantization-aware fine-tuning.
    :param epoch: the epoch just finished, from 1.
    :param metrics: e.g. ``{"loss": ..., "lr": ...}``.
    """


@hookspec
def qbench_after_training_run(job: Job, row: dict[str, Any]) -> None:
    """Called when a job finished and its result row was written.

    :param job: the finished job.
    :param row: the result row (see docs/architecture.md for its fields).
    """


@hookspec
def qbench_on_training_error(job: Job, error: BaseException) -> None:
    """Called when a job fails; the run goes on with the next job.

    :param job: the failed job.
    :param error: the exception.
    """


@hookspec
def qbench_on_suite_error(suite: Suite, error: BaseException) -> None:
    """Called when a run stops before its end: an interrupt (Ctrl-C), an executor that failed,
    or any error outside a single job. Finished rows are kept; the same command resumes.

    :param suite: the suite being run.
    :param error: what stopped the run.
    """


@hookspec
def qbench_after_suite_run(suite: Suite, rows: list[dict[str, Any]]) -> None:
    """Called once after a run, with every row of the suite in the workspace.

    :param suite: the suite that ran.
    :param rows: all result rows for the suite (this run's and earlier ones).
    """
