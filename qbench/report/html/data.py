"""What a leaderboard page shows, as one JSON-ready dict built from a version directory.

The page is static, so everything the browser needs (entries with ranks and intervals, every
seed's provenance, the diff against the previous publication) is computed here, from the same
``results.csv`` and the same :func:`qbench.report.stats.aggregate` as ``leaderboard.md``: the
HTML can never disagree with the Markdown table. A version whose suite names a papers file also
carries the papers' numbers (``papers``, and the paper columns on each entry); one whose rows timed
the deployed model carries its cost (``deploy_cost``, and :data:`qbench.report.deploy_cost.COLUMNS` on each entry).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from qbench.report import deploy_cost
from qbench.report.costs import cost_entries
from qbench.report.leaderboard import _bits_cell, check_single_version, load_rows_csv, metadata, published_versions
from qbench.report.papers import COLUMNS as PAPER_COLUMNS
from qbench.report.papers import attach_papers, papers_of_version
from qbench.report.stats import GROUP, aggregate, deploy_cell

#: Entry flags rendered when the aggregate (or, failing that, the rows) carry them. Older
#: results.csv files have neither column, so each is optional.
FLAGS = ("over_budget", "collapsed", "deploy_diverged")

#: Per-seed fields shown as a row's provenance (only those the rows carry).
PROVENANCE = ("seed", "status", "top1", "job_key", "fp_key", "command", "date", "wall_s", "git_commit",
              "qbench_version", "plugin", "method_version", "torch_version", "timm_version", "python_version",
              "machine", "torch_threads", "suite_sha", "dataset_hash", "reason", "learned", "deploy_latency_ms",
              "deploy_fp32_latency_ms", "deploy_speedup", "deploy_batch_speedup", "deploy_latency_threads",
              "onnxruntime_version")

ENTRY_FIELDS = ("dataset", "model", "method", "method_version", "bits", "rank", "top1", "top1_std", "ci95", "gap",
                "n", "w_bits", "a_bits", "w_sparsity", "gbitops", "size_kb")


def clean(v: Any) -> Any:
    """A JSON-safe scalar: NaN/None become null, numpy scalars plain Python, floats rounded to
    7 significant digits so regenerated pages do not churn in the last bits."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else float(f"{v:.7g}")
    if isinstance(v, (bool, int, str)):
        return v
    return None if pd.isna(v) else str(v)


def truthy(v: Any) -> bool:
    """A flag cell as written by pandas (bool, 0/1, "True"/"False") or missing (False)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def _flags(df: pd.DataFrame, agg: pd.DataFrame) -> list[str]:
    """Attach each known flag to ``agg`` (from the aggregate when it has it, else any seed's
    row flagged); return the flags present."""
    present = []
    ok = df[df["status"] == "ok"]
    for flag in FLAGS:
        if flag not in agg and flag in ok:
            per = ok.assign(_f=ok[flag].map(truthy)).groupby(GROUP, sort=False)["_f"].any()
            agg[flag] = [bool(per.get(tuple(r[c] for c in GROUP), False)) for r in agg[GROUP].to_dict("records")]
        if flag in agg:
            agg[flag] = agg[flag].map(truthy)
            present.append(flag)
    return present


def _rank(v: Any) -> int | None:
    """An integer rank, or None for an entry that is not ranked (the aggregate's "—": over
    budget or collapsed)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else int(f)


def learned_cell(v: Any) -> dict[str, dict[str, Any]] | None:
    """A row's ``learned`` cell (JSON text in results.csv) as ``{"<kind>.<key>": {stat: value}}``
    with JSON-safe numbers; None for a row without it (a method whose quantizers report nothing,
    an older CSV) or a cell that is not such JSON."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if not isinstance(v, dict) or not v:
        return None
    return {str(k): {str(s): clean(x) for s, x in stats.items()} for k, stats in v.items() if isinstance(stats, dict)}


def _seeds(df: pd.DataFrame) -> dict[tuple, list[dict[str, Any]]]:
    cols = [c for c in PROVENANCE if c in df]
    out: dict[tuple, list[dict[str, Any]]] = {}
    for r in df.sort_values("seed", kind="stable").to_dict("records"):
        seed = {c: learned_cell(r[c]) if c == "learned" else clean(r[c]) for c in cols}
        out.setdefault(tuple(r[c] for c in GROUP), []).append(seed)
    return out


def _diff(d: Path) -> dict[str, Any] | None:
    path = d / "diff.csv"
    if not path.exists():
        return None
    delta = pd.read_csv(path)
    against = str(delta["against"].dropna().iloc[0]) if "against" in delta and delta["against"].notna().any() else ""
    cols = [c for c in delta.columns if c != "against"]
    return {"against": against, "rows": [{c: clean(r[c]) for c in cols} for r in delta.to_dict("records")]}


def page_data(d: Path, suite: str) -> dict[str, Any]:
    """Everything one version page shows; ``d`` is ``<root>/<suite>/v<N>``."""
    d = Path(d)
    df = load_rows_csv(d / "results.csv")
    version = check_single_version(df)
    command = str(df["command"].dropna().iloc[0]) if "command" in df and df["command"].notna().any() else ""
    agg = aggregate(df)
    papers = papers_of_version(d)
    if papers is not None and not agg.empty:
        agg = attach_papers(agg, papers)
    flags = _flags(df, agg) if not agg.empty else []
    deployed = not agg.empty and deploy_cost.present(agg)  # only then: older pages carry the data they always did
    seeds = _seeds(df)
    entries = []
    for i, r in enumerate(agg.to_dict("records")):
        e = {k: clean(r.get(k)) for k in ENTRY_FIELDS}
        e["id"] = i
        e["rank"] = _rank(r.get("rank"))
        e["flag_reason"] = clean(r.get("flag")) or ""
        e["pareto"] = [m for m, col in (("B", "pareto_bitops"), ("S", "pareto_size")) if truthy(r.get(col))]
        e["bits_label"] = _bits_cell(r["bits"], r["w_bits"], r["a_bits"])
        e["deploy"] = deploy_cell(r["deploy_top1"], r["deploy_flagged"], r["n"], bool(r["deploy_integer"]))
        e["deploy_top1"] = clean(r.get("deploy_top1"))
        e["deploy_reason"] = clean(r.get("deploy_reason")) or ""
        for flag in flags:
            e[flag] = bool(r[flag])
        e["seeds"] = [s for s in seeds.get(tuple(r[c] for c in GROUP), []) if s.get("status") == "ok"]
        if papers is not None:  # only then: a page without a papers file carries the data it always did
            e.update({k: clean(r.get(k)) for k in PAPER_COLUMNS})
        if deployed:
            e.update({k: clean(r.get(k)) for k in deploy_cost.COLUMNS})
        entries.append(e)
    failed = df[df["status"] != "ok"]
    files = [f for f in ("leaderboard.md", "results.csv", "meta.json", "diff.csv", "pareto.png") if (d / f).exists()]
    out = {
        "suite": suite, "version": version, "versions": published_versions(d.parent.parent, suite),
        "meta": {k: clean(v) if not isinstance(v, list) else [clean(x) for x in v]
                 for k, v in metadata(df, suite, command).items()},
        "first_last": clean(df["first_last"].iloc[0]) if "first_last" in df else None,
        "flags": flags, "entries": entries, "pareto_marks": bool({"pareto_bitops", "pareto_size"} & set(agg.columns)),
        "failed": [{c: clean(r.get(c)) for c in ("dataset", "model", "method", "bits", "seed", "status", "reason",
                                                  "job_key")} for r in failed.to_dict("records")],
        "diff": _diff(d), "files": files,
    }
    costs = cost_entries(df)
    if costs is not None:  # only rows that measured their passes: older pages carry what they did
        out["training_cost"] = [{k: clean(v) for k, v in r.items()} for r in costs]
    if deployed:
        out["deploy_cost"] = True
    if papers is not None:
        out["papers"] = [{"dataset": p.dataset, "model": p.model, "method": p.method, "bits": p.bits, "top1": p.top1,
                          "fp_top1": p.fp_top1, "source": p.source, "note": p.note} for p in papers]
    return out
