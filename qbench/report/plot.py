"""The accuracy vs cost picture: top-1 against GBitOPs and against average weight bits, one row
of panels per (dataset, model), Pareto-optimal methods marked."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def pareto_front(cost: list[float], acc: list[float]) -> list[bool]:
    """True where no other point has cost <= and accuracy >= with one of them strict."""
    out = []
    for i, (c, a) in enumerate(zip(cost, acc)):
        dominated = any((cj <= c and aj >= a) and (cj < c or aj > a) for j, (cj, aj) in enumerate(zip(cost, acc))
                        if j != i)
        out.append(not dominated)
    return out


def pareto_plot(agg: pd.DataFrame, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qbench.atomic import atomic_write_bytes

    groups = list(agg.groupby(["dataset", "model"], sort=False))
    fig, axes = plt.subplots(len(groups), 2, figsize=(12, 4.5 * len(groups)), squeeze=False)
    for row, ((dataset, model), g) in enumerate(groups):
        for col, (xcol, xlabel) in enumerate((("gbitops", "GBitOPs (log)"), ("w_bits", "measured avg weight bits"))):
            ax = axes[row][col]
            front = pareto_front(g[xcol].tolist(), g["top1"].tolist())
            for (r, on_front) in zip(g.itertuples(), front):
                ax.errorbar(getattr(r, xcol), r.top1, yerr=0 if pd.isna(r.top1_std) else r.top1_std,
                            fmt="*" if on_front else "o", ms=11 if on_front else 6,
                            color="C3" if on_front else "C0", capsize=2)
                ax.annotate(f"{r.method} {r.bits}", (getattr(r, xcol), r.top1), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
            pts = sorted((getattr(r, xcol), r.top1) for r, f in zip(g.itertuples(), front) if f)
            if pts:
                ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="C3", lw=0.8, alpha=0.6)
            if xcol == "gbitops":
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("top-1 (%)")
            ax.set_title(f"{dataset} / {model}: ★ Pareto-optimal")
            ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
