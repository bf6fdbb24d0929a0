"""Plan a run: a suite, narrowed by the command line's filters, expanded into jobs.

The CLI and library callers (``qbench publish``'s rule, the workers) plan the same way, so the
set of job keys a suite plans now is defined in one place.
"""
from __future__ import annotations

from pathlib import Path

from qbench.contract.bits import BitTarget
from qbench.errors import QbenchError, UnknownNameError
from qbench.plugin.catalog import Catalog
from qbench.run.fpstart import resolve_fp_files, with_fp_checkpoints
from qbench.run.jobs import Job, expand, select_methods, suite_methods
from qbench.run.suite import DatasetEntry, ModelEntry, Suite, load_suite


def registered_suites(cat: Catalog) -> dict[str, Path]:
    return {n: cat.suites.get(n) for n in cat.suites}


def resolve_suite(suite_name: str, cat: Catalog) -> Suite:
    """A registered suite, a TOML path, or ``NAME@vN``: an older version of a published suite.

    A published version keeps the recipe that produced it (``<suite>/v<N>/suite.toml`` in the
    leaderboards), so a command written beside an old number still reproduces it after the suite
    moves on. The file is checked against the leaderboard's recorded ``suite_sha``.
    """
    import json

    from qbench.report.shipped import leaderboard_roots

    registered = registered_suites(cat)
    name, sep, ver = suite_name.partition("@")
    if not sep or suite_name in registered or suite_name.endswith(".toml"):
        return load_suite(suite_name, registered)
    if not ver.lstrip("v").isdigit():
        raise QbenchError(f"Suite {suite_name!r}: write a published version as NAME@vN, e.g. quick@v2.")
    version = int(ver.lstrip("v"))
    if name in registered:
        current = load_suite(name, registered)
        if current.version == version:
            return current
    found = []
    for root in leaderboard_roots():
        f = root / name / f"v{version}" / "suite.toml"
        if f.exists():
            suite = load_suite(str(f), {})
            meta = f.with_name("meta.json")
            want = json.loads(meta.read_text()).get("suite_sha") if meta.exists() else None
            if want and suite.sha not in (want if isinstance(want, list) else [want]):
                raise QbenchError(f"{str(f)!r} does not hash to the recipe its leaderboard recorded "
                                  f"(suite_sha {want}, the file gives {suite.sha}); it was edited after publishing.")
            if suite.name != name or suite.version != version:
                raise QbenchError(f"{str(f)!r} holds suite {suite.name} v{suite.version}, not {name} v{version}.")
            return suite
        found += [p.parent.name for p in sorted((root / name).glob("v*/suite.toml"))]
    have = ", ".join(f"{name}@{v}" for v in sorted(set(found))) or "none"
    raise QbenchError(f"No recipe for suite {name!r} v{version}: neither the installed suite (v"
                      f"{load_suite(name, registered).version if name in registered else '?'}) nor a published "
                      f"leaderboard's suite.toml. Published recipes: {have}.")


def narrow_suite(suite: Suite, cat: Catalog, models: list[str] | None, datasets: list[str] | None,
                 bits: list[str] | None, seeds: int | None) -> Suite:
    """Apply the command line's filters to a suite (unknown names are errors)."""
    from qbench.models import model_names

    model_entries = None
    if models:
        by_name = {**{m.name: m for m in suite.models}, **{m.label: m for m in suite.models}}
        model_entries = []
        for m in models:
            if m in by_name:
                model_entries.append(by_name[m])
            elif m in model_names():
                model_entries.append(ModelEntry(m))
            else:
                raise UnknownNameError("model", m, list(by_name) + model_names(),
                                       "Any timm model name works (timm.list_models()).")
        model_entries = tuple(model_entries)
    data_entries = None
    if datasets:
        by_name = {d.name: d for d in suite.datasets}
        data_entries = []
        for d in datasets:
            cat.datasets.get(d)
            data_entries.append(by_name.get(d, DatasetEntry(d)))
        data_entries = tuple(data_entries)
    if seeds is not None and seeds < 1:
        raise QbenchError(f"--seeds must be a positive count of seeds, got {seeds}.")
    return suite.narrowed(models=model_entries, datasets=data_entries,
                          bits=tuple(BitTarget.parse(b) for b in bits) if bits else None,
                          seeds=tuple(range(seeds)) if seeds else None)


def plan_jobs(cat: Catalog, suite_name: str, methods: list[str] | None = None, models: list[str] | None = None,
              datasets: list[str] | None = None, bits: list[str] | None = None, seeds: int | None = None,
              threads: int | None = None, device_type: str = "cpu", fp_checkpoints: list[str] | None = None,
              data: str | None = None) -> tuple[Suite, list[Job]]:
    """The suite (narrowed by the filters) and its jobs; ``None`` filters keep the suite's own.
    ``fp_checkpoints`` are ``--fp-checkpoint`` values: files models start from (run/fpstart.py).
    ``data`` (a folder or ``pkg.module:fn``) and models given as ``pkg.module:factory`` make a
    one-off ``<suite>-custom`` suite from the suite's recipe (run/user.py)."""
    from qbench.models.user import is_ref
    from qbench.run.user import custom_suite

    suite = resolve_suite(suite_name, cat)
    if data and datasets:
        raise QbenchError("Give either --data (your own data) or --dataset (a registered one), not both.")
    if data or any(is_ref(m) for m in models or []):
        suite, models = custom_suite(suite, models, data), None
    suite = narrow_suite(suite, cat, models, datasets, bits, seeds)
    suite = resolve_fp_files(with_fp_checkpoints(suite, fp_checkpoints))
    if threads is not None:
        if threads < 1:
            raise QbenchError(f"--threads must be >= 1, got {threads}.")
        suite = suite.narrowed(threads=threads)
    available = suite_methods(suite, cat)
    chosen = select_methods(methods or suite.methods, available)
    if not any(m.reference for m in chosen) and "fp32" in available:
        chosen.insert(0, available["fp32"])  # every table needs its FP32 row
    return suite, expand(suite, cat, chosen, device_type)


