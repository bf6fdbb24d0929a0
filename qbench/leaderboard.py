"""Leaderboards: aggregate result rows over seeds and render them as Markdown.

Layout: ``leaderboards/<suite>/v<suite version>/results.csv`` (raw rows) and ``leaderboard.md``
(the table, regenerated from the CSV). Rows of different suite versions are never mixed.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import QbenchError
from .workspace import atomic_write_text, rows_to_csv

GROUP = ["dataset", "model", "method", "bits"]


def version_dir(root: Path, suite: str, version: int) -> Path:
    return Path(root) / suite / f"v{version}"


def check_single_version(df: pd.DataFrame) -> int:
    versions = sorted(set(df["suite_version"].astype(int)))
    if len(versions) != 1:
        raise QbenchError(f"Rows mix suite versions {versions}; a table holds one version. "
                          "Filter the rows or publish each version on its own.")
    return versions[0]


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, model, method, bits), FP32 first in each group."""
    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame()
    agg = ok.groupby(GROUP, sort=False).agg(
        n=("seed", "nunique"), top1=("top1", "mean"), top1_std=("top1", "std"),
        fp_top1=("fp_top1", "mean"), w_bits=("w_bits_measured", "mean"), a_bits=("a_bits_measured", "mean"),
        gbitops=("gbitops", "mean"), size_kb=("size_kb", "mean"), method_version=("method_version", "max"),
    ).reset_index()
    agg["top1_std"] = agg["top1_std"].fillna(0.0)
    agg["gap"] = agg["top1"] - agg["fp_top1"]
    agg["_ref"] = agg["bits"] != "fp32"
    agg = agg.sort_values(["dataset", "model", "_ref", "bits", "top1"], ascending=[True, True, True, False, False])
    return agg.drop(columns="_ref").reset_index(drop=True)


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def render_markdown(df: pd.DataFrame, suite: str, command: str = "") -> str:
    """The leaderboard table(s), one per (dataset, model), with how they were obtained."""
    version = check_single_version(df)
    agg = aggregate(df)
    failed = df[df["status"] != "ok"]
    out = io.StringIO()
    out.write(f"# qbench leaderboard: suite `{suite}` v{version}\n\n")
    first = df.iloc[0]
    out.write(f"Top-1 (%) mean ± std over seeds; W/A bits are **measured** by the bit audit "
              f"(parameter-weighted mean of ceil(log2 levels) over quantized layers); first/last layers: "
              f"`{first.get('first_last', '')}`. qbench {first.get('qbench_version', '')}, torch "
              f"{first.get('torch_version', '')}, timm {first.get('timm_version', '')}, commit "
              f"`{first.get('git_commit', '')}`, machine: {first.get('machine', '')}.\n\n")
    if command:
        out.write(f"Reproduce: `{command}`\n\n")
    for (dataset, model), g in agg.groupby(["dataset", "model"], sort=False):
        out.write(f"## {dataset} / {model}\n\n")
        out.write("| method | bits | top-1 | Δ FP | seeds | W bits | A bits | GBitOPs | size (KB) |\n")
        out.write("|---|---|---|---|---|---|---|---|---|\n")
        for r in g.itertuples():
            out.write(f"| {r.method} v{r.method_version} | {r.bits} | {r.top1:.2f} ± {r.top1_std:.2f} | "
                      f"{r.gap:+.2f} | {r.n} | {_fmt(r.w_bits)} | {_fmt(r.a_bits)} | {r.gbitops:.4f} | "
                      f"{r.size_kb:.1f} |\n")
        out.write("\n")
    if not failed.empty:
        out.write("## Jobs that did not finish\n\n")
        for r in failed.itertuples():
            out.write(f"- {r.dataset}/{r.model}/{r.method}/{r.bits}/seed{r.seed}: {r.status}: {getattr(r, 'reason', '')}\n")
    return out.getvalue()


def publish(rows: list[dict[str, Any]], root: Path, suite: str, command: str) -> Path:
    """Write a suite version's rows and table under ``root``; returns the version directory."""
    if not rows:
        raise QbenchError(f"No result rows for suite {suite!r}: run it first (qbench run --suite {suite}).")
    df = pd.read_csv(io.StringIO(rows_to_csv(rows)))
    version = check_single_version(df)
    d = version_dir(root, suite, version)
    atomic_write_text(d / "results.csv", rows_to_csv(rows))
    atomic_write_text(d / "leaderboard.md", render_markdown(df, suite, command))
    return d


def load_rows_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise QbenchError(f"No results at {str(path)!r}. Run the suite or publish it first.")
    return pd.read_csv(path)


def latest_version_dir(root: Path, suite: str) -> Path:
    base = Path(root) / suite
    versions = sorted((int(p.name[1:]), p) for p in base.glob("v*") if p.name[1:].isdigit()) if base.exists() else []
    if not versions:
        raise QbenchError(f"No published leaderboard for suite {suite!r} in {str(base)!r}. "
                          f"Publish one with `qbench publish {suite}` after a run.")
    return versions[-1][1]
