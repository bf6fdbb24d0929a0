"""A small published suite for the page tests: two datasets, flagged entries, a diff, and a
method name that tries to break out of the page's script and markup.

``gamma`` collapsed (cheapest of all, yet on no front); ``delta`` is over budget (not ranked,
but placed on the chart by its measured cost, where it sits on the front). ``lsq`` rows carry
the quantizers' learned state (``learned``); the others, like methods without it, do not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qbench.report.html import write_pages
from qbench.report.leaderboard import publish

SUITE = "demo"
EVIL = "</script><img src=x onerror=alert(1)>"

#: (dataset, method, bits) -> (top-1 per seed, GBitOPs, size KB, measured W/A bits, flags)
ENTRIES: dict[tuple[str, str, str], tuple[list[float], float, float, float, dict[str, Any]]] = {
    ("digits", "fp32", "fp32"): ([98.0, 98.4], 2.6, 1069.0, 32.0, {}),
    ("digits", "lsq", "W4A4"): ([96.0, 96.6], 0.05, 147.0, 4.0, {}),
    ("digits", "beta", "W4A4"): ([97.6, 97.8], 0.06, 150.0, 4.0, {}),
    ("digits", "lsq", "W2A2"): ([95.0, 95.4], 0.02, 81.0, 2.0, {}),
    ("digits", "alpha-with-a-long-name", "W2A2"): ([90.0, 91.0], 0.021, 82.0, 2.0, {}),
    ("digits", "gamma", "W2A2"): ([12.0, 13.0], 0.015, 70.0, 2.0,
                                  {"collapsed": True, "collapse_reason": "top-1 near chance"}),
    ("digits", "delta", "W2A2"): ([97.0, 97.2], 0.04, 110.0, 3.1,
                                  {"over_budget": True, "budget_reason": "measured W bits 3.1 > target 2"}),
    ("digits", EVIL, "W4A4"): ([80.0, 81.0], 0.055, 148.0, 4.0, {}),
    ("fashion", "fp32", "fp32"): ([90.0, 90.2], 2.6, 1069.0, 32.0, {}),
    ("fashion", "lsq", "W4A4"): ([88.0, 88.5], 0.05, 147.0, 4.0, {}),
}


def learned_sample(seed: int) -> dict[str, dict[str, Any]]:
    """A ``learned`` field as the harness writes it for lsq (its steps moved; seed 1 moved more)."""
    return {"activation.step": {"n": 20, "start_mean": 0.319, "start_min": 0.195, "start_max": 0.54,
                                "end_mean": round(0.3 - 0.01 * seed, 4), "end_min": 0.18,
                                "end_max": round(0.52 + 0.01 * seed, 4), "mean_abs_change": round(0.019 + 0.01 * seed, 4)},
            "weight.step": {"n": 20, "start_mean": 0.2, "start_min": 0.07, "start_max": 0.33,
                            "end_mean": 0.21, "end_min": 0.071, "end_max": 0.34, "mean_abs_change": 0.0125}}


def sample_rows(version: int = 1, shift: float = 0.0, flags: bool = True) -> list[dict[str, Any]]:
    """Result rows as the harness writes them (the fields the leaderboard and the page read).
    ``shift`` moves lsq's top-1 (a diff to show); ``flags=False`` leaves the flag columns out,
    as in CSVs written before they existed."""
    out = []
    for (dataset, method, bits), (accs, gbitops, size, wbits, flag) in ENTRIES.items():
        target = 32 if bits == "fp32" else int(bits[1])
        for seed, acc in enumerate(accs):
            row = {"suite": SUITE, "suite_version": version, "dataset": dataset, "model": "resnet20",
                   "method": method, "method_version": 1, "bits": bits, "seed": seed, "status": "ok",
                   "top1": acc + (shift if method == "lsq" else 0.0), "top5": 100.0, "fp_top1": accs[0],
                   "w_bits_measured": wbits, "a_bits_measured": float(target), "w_bits_target": target,
                   "a_bits_target": target, "gbitops": gbitops, "size_kb": size, "first_last": "fp",
                   "dataset_hash": f"{dataset}-hash", "plugin": f"qbench-{method}==0.1.0",
                   "command": f"qbench run --suite {SUITE} --all",
                   "job_key": f"{dataset[:3]}{method[:5]}{bits}s{seed}v{version}",
                   "fp_key": f"fp-{dataset}-{seed}", "qbench_version": "0.2.0", "torch_version": "2.13.0",
                   "timm_version": "1.0.31", "python_version": "3.11.7", "git_commit": "abc123def456",
                   "machine": "x86_64 Linux 2 threads (cpu)", "torch_threads": 2, "date": "2026-12-01T10:00:00+00:00",
                   "wall_s": 12.5 + seed}
            if method == "lsq":
                row["learned"] = learned_sample(seed)
            if flags:
                row.update({"over_budget": False, "budget_reason": "", "collapsed": False, "collapse_reason": ""})
                row.update(flag)
            out.append(row)
    out.append({**out[-1], "seed": 2, "status": "failed", "reason": "RuntimeError: out of memory", "top1": None,
                "job_key": "failedjob0000001"})
    return out


def publish_sample(root: Path) -> Path:
    """Publish v1, republish it with lsq moved (diff.csv), then v2 (diff against v1), writing
    the pages after each as ``qbench publish`` does: the root then holds two versions whose
    pages link each other. Returns the v2 directory."""
    for version, shift in ((1, 0.0), (1, 0.5), (2, 1.0)):
        d = publish(sample_rows(version, shift=shift), root, SUITE, plot=False)
        write_pages(root, SUITE)
    return d
