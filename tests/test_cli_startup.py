"""The CLI starts at once: importing it, ``--help`` and the listing commands leave torch, timm, onnx
and onnxruntime unimported (each takes seconds to import; a command that prints a page must not).

Each case runs in a fresh interpreter, since this test process has imported torch long ago.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qbench.cli import cli

HEAVY = ("torch", "timm", "onnx", "onnxruntime")

#: Runs the CLI in-process on argv, then prints which heavy modules got imported (stdout's last line).
PROBE = """
import json, sys
args = json.loads(sys.argv[1])
if args is not None:
    from qbench.cli import main
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, exc.code
else:
    import qbench.cli
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
""".format(heavy=HEAVY)


def heavy_imports(args: list[str] | None, **env: str) -> list[str]:
    """The heavy modules ``qbench ARGS`` imports (``args=None``: just ``import qbench.cli``)."""
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "COLUMNS": "200", **env})
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_no_heavy_module() -> None:
    assert heavy_imports(None) == []


def test_qbench_help_imports_no_heavy_module() -> None:
    assert heavy_imports(["--help"]) == []


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_help_imports_no_heavy_module(command: str) -> None:
    assert heavy_imports([command, "--help"]) == [], f"qbench {command} --help"


def test_the_bench_model_choices_are_the_bench_models() -> None:
    """``--model``'s choices are written out in cli/bench.py, so that --help needs no torch."""
    from qbench.cli.bench import BENCH_MODELS
    from qbench.run.bench import MODELS

    assert sorted(BENCH_MODELS) == sorted(MODELS)


def test_the_announced_cifar_models_are_the_ones_registered_into_timm() -> None:
    from qbench.default_plugins.models import CIFAR_MODELS as announced
    from qbench.models.cifar_resnet import CIFAR_MODELS as registered

    assert announced == {name: (fn.__doc__ or "").strip() for name, fn in registered.items()}


def test_plugins_lists_every_installed_plugin_without_torch() -> None:
    """Every plugin shipped under plugins/ (those installed here) loads its entry module without torch."""
    assert heavy_imports(["plugins"]) == []


def test_list_methods_calls_only_the_methods_hook_and_needs_no_torch() -> None:
    """qbench-dgms is left out: its methods hook loads its compiled kernel, after torch, to choose the
    method's params (docs/plugin-contract.md)."""
    assert heavy_imports(["list", "methods"], QBENCH_DISABLED_PLUGINS="dgms") == []
    for kind in ("models", "suites"):
        assert heavy_imports(["list", kind]) == [], kind


def test_old_homes_of_the_built_in_parts_still_resolve() -> None:
    from qbench.default_plugins import allocators, parts, wrappers

    assert allocators.FixedAllocator is parts.FixedAllocator  # type: ignore[attr-defined]
    assert wrappers.DistillWrapper is parts.DistillWrapper  # type: ignore[attr-defined]


def test_the_light_api_names_import_no_torch() -> None:
    """The names docs/plugin-contract.md tells a plugin's entry module it may import for free."""
    code = ("import json, sys\n"
            "from qbench import hookimpl\n"
            "from qbench.api import (BitTarget, LayerBits, LayerInfo, Method, OptimSpec, PluginError, QbenchError,\n"
            "                        bind_params, lazy_exports)\n"
            f"print(json.dumps(sorted(m for m in {HEAVY} if m in sys.modules)))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
