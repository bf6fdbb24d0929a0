"""Leaderboards: versioned directories of raw rows, a rendered table, metadata, a diff and a plot.

Layout, one directory per suite version (results of different versions are never mixed)::

    leaderboards/<suite>/v<version>/results.csv     the raw rows (every number comes from here)
    leaderboards/<suite>/v<version>/leaderboard.md  the table, rendered from results.csv
    leaderboards/<suite>/v<version>/meta.json       schema, versions, dataset hashes, machine, command
    leaderboards/<suite>/v<version>/diff.csv        top1_diff / rank_diff against what it replaced
    leaderboards/<suite>/v<version>/pareto.png      accuracy vs GBitOPs and vs average bits
    leaderboards/<suite>/v<version>/<papers file>   the papers' numbers, when the suite names them
"""
from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from qbench.atomic import atomic_write_text
from qbench.errors import QbenchError
from qbench.report import deploy_cost
from qbench.report.budget import BITOPS_RTOL, BITS_TOL, CHANCE_MARGIN, DEPLOY_TOP1_TOL
from qbench.report.costs import cost_markdown
from qbench.report.papers import (MD_HEADER, MD_LEGEND, PaperEntry, attach_papers, copy_papers, md_cells,
                                  md_sources, papers_of_version)
from qbench.report.rows_csv import rows_to_csv
from qbench.report.ranks import RANK_RULE
from qbench.report.stats import GROUP, aggregate, deploy_cell, is_ranked, pareto_cell, torch_threads

SCHEMA_VERSION = 1


def version_dir(root: Path, suite: str, version: int) -> Path:
    return Path(root) / suite / f"v{version}"


def published_versions(root: Path, suite: str) -> list[int]:
    base = Path(root) / suite
    if not base.exists():
        return []
    return sorted(int(p.name[1:]) for p in base.glob("v*") if p.name[1:].isdigit() and (p / "results.csv").exists())


def latest_version_dir(root: Path, suite: str) -> Path:
    versions = published_versions(root, suite)
    if not versions:
        raise QbenchError(f"No published leaderboard for suite {suite!r} in {str(Path(root) / suite)!r}. "
                          f"Publish one with `qbench publish {suite}` after a run.")
    return version_dir(root, suite, versions[-1])


def check_single_version(df: pd.DataFrame) -> int:
    versions = sorted(set(df["suite_version"].astype(int)))
    if len(versions) != 1:
        raise QbenchError(f"Rows mix suite versions {versions}; a table holds one version. "
                          "Filter the rows, or publish each version on its own.")
    return versions[0]


def load_rows_csv(path: Path) -> pd.DataFrame:
    """A results.csv, checked to be one: a foreign or damaged file is a one-line error naming it."""
    from qbench.report.row import REQUIRED_COLUMNS

    if not Path(path).exists():
        raise QbenchError(f"No results at {str(path)!r}. Run the suite, or publish it first.")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise QbenchError(f"{str(path)!r} is empty: it holds no result rows. Rerun the suite, or restore the "
                          "file from git.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise QbenchError(f"{str(path)!r} cannot be parsed as CSV ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}). Restore it from git or rerun the suite.") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise QbenchError(f"{str(path)!r} is not a qbench results table: it lacks the columns {', '.join(missing)}. "
                          "Pass a results.csv written by `qbench run` or `qbench publish`.")
    return df


#: Measured average bits further than this from the target are shown next to it.
BITS_SHOWN_AT = 0.1


def _bits_cell(bits: str, w_bits: float, a_bits: float, always: bool = False) -> str:
    """The target label, plus what the model ended at when that differs (a learned or allocated
    bit-width, or components that died): ``W2A2 → W4A3``. Without it a method that raised its
    bits would sit among the W2A2 rows as if it had kept them. ``always``: show the measured bits
    whatever the difference (an over-budget entry)."""
    m = re.fullmatch(r"W(\d+)A(\d+)", str(bits))
    if not m or (not always and abs(w_bits - int(m.group(1))) <= BITS_SHOWN_AT
                 and abs(a_bits - int(m.group(2))) <= BITS_SHOWN_AT):
        return str(bits)
    return f"{bits} → W{w_bits:.3g}A{a_bits:.3g}"


def _pct(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def metadata(df: pd.DataFrame, suite: str, command: str) -> dict[str, Any]:
    """Provenance of a leaderboard: what produced every row, summarised."""
    def uniq(col: str) -> list[Any]:
        return sorted({str(v) for v in df[col].dropna()}) if col in df else []

    plugins = sorted({f"{m}: {p}" for m, p in zip(df.get("method", []), df.get("plugin", []))})
    return {
        "schema_version": SCHEMA_VERSION, "suite": suite, "suite_version": check_single_version(df),
        "suite_sha": uniq("suite_sha"), "qbench_version": uniq("qbench_version"), "plugins": plugins,
        "torch_version": uniq("torch_version"), "timm_version": uniq("timm_version"),
        "dataset_hash": sorted({f"{d}: {h}" for d, h in zip(df["dataset"], df.get("dataset_hash", df["dataset"]))}),
        "machine": uniq("machine"), "torch_threads": sorted(torch_threads(df)), "git_commit": uniq("git_commit"),
        "command": command,
        "rows": int(len(df)), "rows_ok": int((df["status"] == "ok").sum()),
    }


def render_markdown(df: pd.DataFrame, suite: str, command: str = "",
                    papers: list[PaperEntry] | None = None) -> str:
    """The leaderboard table(s), one per (dataset, model), with how they were obtained; with
    ``papers`` (the suite's papers file), each table also shows the papers' numbers and the gaps."""
    version = check_single_version(df)
    agg = aggregate(df)
    if papers is not None and not agg.empty:
        agg = attach_papers(agg, papers)
    meta = metadata(df, suite, command)
    out = io.StringIO()
    out.write(f"# qbench leaderboard: suite `{suite}` v{version}\n\n")
    out.write("Generated from `results.csv` in this directory by `qbench leaderboard "
              f"{suite} --version {version} --plot`; do not edit by hand.\n\n")
    if command:
        out.write(f"Produced by: `{command}`\n\n")
        out.write("The trained models behind these rows: run that command (it keeps every job's model in its "
                  "workspace), then `qbench export --workspace WS --method M --model MODEL --bits B --seed S -o DIR` "
                  "writes model.onnx, packed weights and a manifest (README, \"Deploy what was trained\").\n\n")
    out.write("Top-1 (%): mean ± std over seeds, with the 95 % Student-t interval half-width. One table per "
              f"dataset, model and bit target (weight-only targets apart). *Rank*: {RANK_RULE} W/A bits are **measured** by the "
              "bit audit (parameter-weighted mean of ceil(log2 distinct levels) over quantized layers); "
              "*bits* is the suite's target, followed by `→` what the model measured when that differs by "
              "more than 0.1 (a method that learns or allocates bits); "
              "*W zeros* is the fraction of deployed quantized weights that are exactly 0; "
              "*Pareto* ★ marks the entries no other entry of the same dataset and model beats on top-1 at "
              "lower or equal measured cost: B = GBitOPs, S = packed size (mixed-precision and learned-bit "
              "methods are compared there by what they measured); over-budget and collapsed entries are "
              "listed apart, not ranked; "
              "*deploy* is top-1 of the model exported to ONNX and run by onnxruntime on the CPU (full test "
              "set), `⚠ k/n` when k seeds diverge from qbench's own evaluation beyond the parity rule (their "
              "reasons are listed below the tables), `int` when onnxruntime ran integer kernels "
              "(ConvInteger, MatMulInteger, QLinearConv) for every seed; "
              f"first/last layers: `{df['first_last'].iloc[0] if 'first_last' in df else ''}`.\n\n")
    if papers is not None:
        out.write(MD_LEGEND + "\n\n")
    if deploy_cost.present(agg):  # rows that timed the deployed model; older tables render as they did
        out.write(deploy_cost.MD_LEGEND + "\n\n")
    out.write(f"qbench {', '.join(meta['qbench_version'])}; torch {', '.join(meta['torch_version'])}; "
              f"timm {', '.join(meta['timm_version'])}; commit {', '.join(meta['git_commit'])}; "
              f"machine: {', '.join(meta['machine'])}; torch threads: "
              f"{', '.join(map(str, meta['torch_threads'])) or 'n/a'}; datasets: {', '.join(meta['dataset_hash'])}.\n\n")
    for (dataset, model), g in agg.groupby(["dataset", "model"], sort=False):
        ref = g[g["bits"] == "fp32"]
        budgets = [(b, gb) for b, gb in g[g["bits"] != "fp32"].groupby("bits", sort=False)] or [("", g.iloc[:0])]
        for bits, gb in budgets:  # one table per budget: a weight-only row never shares a rank table
            kind = " (weight-only)" if bits.endswith("A32") else ""
            out.write(f"## {dataset} / {model}" + (f" / {bits}{kind}" if bits else "") + "\n\n")
            _table(out, pd.concat([ref, gb]), papers, deploy_cost.present(agg))
    _unranked_sections(out, agg, df, papers)
    return out.getvalue() + cost_markdown(df)  # training cost: only rows that measured their passes


def _table(out: io.StringIO, g: pd.DataFrame, papers: object, costs: bool = False) -> None:
    out.write("| rank | method | bits | top-1 | ±95% CI | Δ FP | seeds | W bits | A bits | W zeros | GBitOPs | "
              "size (KB) | Pareto | deploy |" + (deploy_cost.MD_HEADER if costs else "") + (MD_HEADER if papers is not None
                                                                                else "") + "\n")
    out.write("|---" * 14 + "|" + "---|" * (4 * costs + (4 if papers is not None else 0)) + "\n")
    for r in g.itertuples():
        if r.bits != "fp32" and not is_ranked(r.rank):
            continue
        rank = "ref" if r.bits == "fp32" else str(r.rank)
        out.write(f"| {rank} | {r.method} v{r.method_version} | {_bits_cell(r.bits, r.w_bits, r.a_bits)} | "
                  f"{r.top1:.2f} ± {_fmt(r.top1_std)} | "
                  f"{_fmt(r.ci95)} | {r.gap:+.2f} | {r.n} | {r.w_bits:.2f} | {r.a_bits:.2f} | "
                  f"{_pct(r.w_sparsity)} | {r.gbitops:.5f} | {r.size_kb:.1f} | {pareto_cell(r)} | "
                  f"{deploy_cell(r.deploy_top1, r.deploy_flagged, r.n, r.deploy_integer)} |"
                  + (deploy_cost.md_cells(r) if costs else "") + (md_cells(r) if papers is not None else "") + "\n")
    out.write("\n")


def _unranked_sections(out: io.StringIO, agg: pd.DataFrame, df: pd.DataFrame,
                       papers: list[PaperEntry] | None) -> None:
    unranked = agg[(agg["bits"] != "fp32") & ~agg["rank"].map(is_ranked)]
    if not unranked.empty:
        out.write("## Not ranked: over budget, collapsed or not what deploys\n\n")
        out.write("Entries whose measured cost exceeds their target (W or A bits above it by more than "
                  f"{BITS_TOL:g}, or GBitOPs above the target's on the same layers by more than "
                  f"{100 * BITOPS_RTOL:g} %), or that collapsed (most layers below 2^(b-1) levels, or top-1 "
                  f"within {CHANCE_MARGIN:g} points of chance), or whose model exported to onnxruntime scores more than "
                  f"{DEPLOY_TOP1_TOL:g} point apart from qbench's own evaluation by more than the model's own float "
                  "rounding explains (what deploys is not what was evaluated). Shown with what they measured, never ranked "
                  "with the entries that kept the budget; they stay on the Pareto view by measured cost "
                  "(collapsed ones excepted).\n\n")
        out.write("| dataset / model | method | bits (target → measured) | top-1 | seeds | W bits | A bits | GBitOPs "
                  "| target GBitOPs | size (KB) | Pareto | why |\n")
        out.write("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in unranked.itertuples():
            out.write(f"| {r.dataset} / {r.model} | {r.method} v{r.method_version} | "
                      f"{_bits_cell(r.bits, r.w_bits, r.a_bits, always=bool(r.over_budget))} | "
                      f"{r.top1:.2f} ± {_fmt(r.top1_std)} | {r.n} | {r.w_bits:.2f} | {r.a_bits:.2f} | "
                      f"{r.gbitops:.5f} | {_fmt(r.target_gbitops, 5)} | {r.size_kb:.1f} | {pareto_cell(r)} | "
                      f"{r.flag} |\n")
        out.write("\n")
    diverged = agg[agg["deploy_flagged"] > 0]
    if not diverged.empty:
        out.write("## Deployment parity flags\n\n")
        out.write("onnxruntime's output differs from qbench's evaluation beyond one output quantization step "
                  "on more than 1 % of test samples, or its top-1 differs by more than 0.1 point. Each reason is "
                  "the measured gap; the self-check, where given, says how often qbench's own logits move as far in float64 "
                  "and when the input moves by one part per million (the model's own rounding sensitivity).\n\n")
        for r in diverged.itertuples():
            out.write(f"- {r.dataset} / {r.model} / {r.method} v{r.method_version} / {r.bits}: {r.deploy_reason}\n")
        out.write("\n")
    if papers:
        out.write(md_sources(papers))
    failed = df[df["status"] != "ok"]
    if not failed.empty:
        out.write("## Jobs that did not finish\n\n")
        for r in failed.itertuples():
            out.write(f"- {r.dataset}/{r.model}/{r.method}/{r.bits}/seed{r.seed}: {r.status}: {getattr(r, 'reason', '')}\n")


def diff(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """top1_diff and rank_diff per (dataset, model, method, bits) between two leaderboards."""
    a, b = aggregate(old), aggregate(new)
    cols = GROUP + ["top1", "rank", "method_version"]
    m = a[cols].merge(b[cols], on=GROUP, how="outer", suffixes=("_old", "_new"))
    m["top1_diff"] = m["top1_new"] - m["top1_old"]
    m["rank_diff"] = pd.to_numeric(m["rank_new"], errors="coerce") - pd.to_numeric(m["rank_old"], errors="coerce")
    return m


def plotting_available() -> bool:
    """pareto.png needs matplotlib, an optional extra (``qbench[plot]``): without it the table,
    metadata and HTML page are still written, and the plot is skipped."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def render(d: Path, suite: str, plot: bool = False) -> str:
    """Regenerate leaderboard.md (and pareto.png) of a version directory from its results.csv."""
    df = load_rows_csv(d / "results.csv")
    command = str(df["command"].dropna().iloc[0]) if "command" in df and df["command"].notna().any() else ""
    md = render_markdown(df, suite, command, papers_of_version(d))
    atomic_write_text(d / "leaderboard.md", md)
    atomic_write_text(d / "meta.json", json.dumps(metadata(df, suite, command), indent=1))
    if plot and plotting_available():
        from qbench.report.plot import pareto_plot
        pareto_plot(aggregate(df), d / "pareto.png", f"{suite} v{check_single_version(df)}")
    return md


def publish(rows: list[dict[str, Any]], root: Path, suite: str, plot: bool = True,
            recipe_file: Path | None = None) -> Path:
    """Publish rows as ``root/suite/v<version>/``: a new version keeps older ones. ``diff.csv`` is against the newest
    older version (what a reader of v2 wants to know: what moved since v1), so republishing a version keeps that diff;
    only a suite's first version is diffed against its own previous publication. ``recipe_file``, the suite's TOML, is
    kept as ``suite.toml``: after the suite moves on, ``--suite NAME@vN`` still runs the recipe behind this version."""
    if not rows:
        raise QbenchError(f"No result rows for suite {suite!r}: run it first (qbench run --suite {suite}).")
    new = pd.read_csv(io.StringIO(rows_to_csv(rows)))
    version = check_single_version(new)
    d = version_dir(root, suite, version)
    previous: pd.DataFrame | None = None
    against = ""
    older = [v for v in published_versions(root, suite) if v < version]
    if older:
        previous, against = pd.read_csv(version_dir(root, suite, older[-1]) / "results.csv"), f"v{older[-1]}"
    elif (d / "results.csv").exists():
        previous, against = pd.read_csv(d / "results.csv"), f"v{version} (previous publication)"
    atomic_write_text(d / "results.csv", rows_to_csv(rows))
    if recipe_file is not None and Path(recipe_file).is_file():
        atomic_write_text(d / "suite.toml", Path(recipe_file).read_text())
        copy_papers(Path(recipe_file), d)  # the paper numbers the table is compared with stay with it
    if previous is not None:
        delta = diff(previous, new)
        delta.insert(0, "against", against)
        atomic_write_text(d / "diff.csv", delta.to_csv(index=False))
    render(d, suite, plot=plot)
    return d
