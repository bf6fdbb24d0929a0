"""The advice report of ``qbench advise``: Markdown and one self-contained HTML page.

Both show the finalists' test top-1 with a 95 % interval over seeds, the budget kept (QAT steps
spent against the full sweep's), the training cost, the screening curve of every method (its
validation top-1 at each rung, where it was cut and why) and the one command that reproduces it.
The page, like the leaderboards' pages, inlines everything (an SVG chart, no script, no CDN), so
it opens from file:// or a CI artefact.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from qbench.atomic import atomic_write_text

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def _num(v: float, fmt: str = ".2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _cut(curve: list[dict[str, Any]]) -> str:
    last = curve[-1] if curve else None
    if last is None:
        return "not screened"
    return last["why"] if not last["kept"] else f"finalist after rung {last['rung']}"


def lines(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) facts shared by both formats."""
    st = s["steps"]
    return [
        ("Model", f"{s['model']} (source {s['model_source'] or 'timm'})"),
        ("Data", f"{s['dataset']} (source {s['data_source'] or 'registered'})"),
        ("Bits", ", ".join(s["bits"])),
        ("Validation split", f"{s['holdout']:.0%} of each training class, seed {s['holdout_seed']} (in the keys)"),
        ("Schedule", f"rungs of {', '.join(map(str, s['rungs']))} QAT epoch(s), 1/{s['eta']} kept each rung, "
                     f"{s['finalists']} finalist(s); finals: {s['qat_epochs']} QAT epochs x {len(s['seeds'])} seed(s)"),
        ("Budget kept", f"{st['total']} QAT steps ({st['screening']} screening + {st['finals']} finals) = "
                        f"{_num(100 * st['share'], '.0f')} % of the full sweep's {st['full_sweep']} "
                        f"(every method, full recipe, every seed); budget {s['budget']:.0%}"),
        ("Training cost", f"{_num(s['seconds']['screening'], '.1f')} s of QAT screening, "
                          f"{_num(s['seconds']['finals'], '.1f')} s finals"),
    ]


def markdown(s: dict[str, Any]) -> str:
    out = [f"# Advice: {s['model']} on {s['dataset']} at {', '.join(s['bits'])}", ""]
    best = next((f for f in s["finals"] if f["method"] != "fp32"), None)
    if best:
        out += [f"**Use {best['method']}**: test top-1 {_num(best['top1'])} ± {_num(best['ci95'])} "
                f"(95 % interval over {best['seeds']} seed(s)).", ""]
    out += [f"- {k}: {v}" for k, v in lines(s)]
    out += ["", "## Finalists (test split, full recipe)", "", "| method | bits | top-1 | ± 95 % | seeds | QAT s |",
            "|---|---|---:|---:|---:|---:|"]
    out += [f"| {f['method']} | {f['bits']} | {_num(f['top1'])} | {_num(f['ci95'])} | {f['seeds']}/{f['of']} | "
            f"{_num(f['qat_s'], '.1f')} |" for f in s["finals"]]
    out += ["", "## Screening (validation split)", "",
            "| method | " + " | ".join(f"rung {i + 1} ({e} ep)" for i, e in enumerate(s["rungs"])) + " | outcome |",
            "|---|" + "---:|" * len(s["rungs"]) + "---|"]
    for m, curve in s["curves"].items():
        cells = {c["rung"]: (_num(c["top1"]) if c["status"] == "ok" else c["status"]) for c in curve}
        out.append(f"| {m} | " + " | ".join(cells.get(i + 1, "") for i in range(len(s["rungs"]))) +
                   f" | {_cut(curve)} |")
    out += ["", "## Reproduce", "", "```", s["command"], "```", ""]
    return "\n".join(out)


def chart(s: dict[str, Any], width: int = 640, height: int = 320) -> str:
    """The screening curves as an SVG: validation top-1 against QAT epochs, one line per method,
    a cross where a method was cut."""
    pad = 48
    pts = [c for curve in s["curves"].values() for c in curve if c["status"] == "ok"]
    lo = min([c["top1"] for c in pts], default=0.0)
    hi = max([c["top1"] for c in pts], default=100.0)
    lo, hi = math.floor(lo - 1), math.ceil(hi + 1)
    xs = s["rungs"]

    def x(e: int) -> float:
        return pad + (width - 2 * pad - 90) * (xs.index(e) / max(1, len(xs) - 1) if len(xs) > 1 else 0.5)

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * (v - lo) / max(hi - lo, 1e-9)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="screening curves" class="chart">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad - 90}" y2="{height - pad}" stroke="#444"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#444"/>',
             f'<text x="{(width - 90) / 2}" y="{height - 10}" text-anchor="middle">QAT epochs (rung)</text>',
             f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">'
             'validation top-1 (%)</text>',
             f'<text x="{pad - 6}" y="{y(hi) + 4}" text-anchor="end">{hi}</text>',
             f'<text x="{pad - 6}" y="{y(lo) + 4}" text-anchor="end">{lo}</text>']
    parts += [f'<text x="{x(e)}" y="{height - pad + 16}" text-anchor="middle">{e}</text>' for e in xs]
    for i, (m, curve) in enumerate(s["curves"].items()):
        colour = COLOURS[i % len(COLOURS)]
        ok = [c for c in curve if c["status"] == "ok"]
        if len(ok) > 1:
            path = " ".join(f"{x(c['epochs']):.1f},{y(c['top1']):.1f}" for c in ok)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for c in ok:
            cx, cy = x(c["epochs"]), y(c["top1"])
            tip = html.escape(f"{m}, {c['epochs']} epoch(s): {c['top1']:.2f} ({c['why']})")
            if c["kept"]:
                parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}"><title>{tip}</title></circle>')
            else:
                parts.append(f'<path d="M{cx - 5:.1f},{cy - 5:.1f}L{cx + 5:.1f},{cy + 5:.1f}M{cx - 5:.1f},'
                             f'{cy + 5:.1f}L{cx + 5:.1f},{cy - 5:.1f}" stroke="{colour}" stroke-width="2">'
                             f'<title>{tip}</title></path>')
        if ok:
            parts.append(f'<text x="{x(ok[-1]["epochs"]) + 8:.1f}" y="{y(ok[-1]["top1"]) + 4:.1f}" '
                         f'fill="{colour}" class="label">{html.escape(m)}</text>')
    parts.append("</svg>")
    return "".join(parts)


STYLE = ("body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}"
         "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
         "td.n{text-align:right}.chart{max-width:100%;height:auto;font-size:11px}.label{font-size:11px}"
         "pre{background:#f4f4f4;padding:.6rem;overflow-x:auto}.best{font-size:1.2rem}dt{font-weight:600}")


def page(s: dict[str, Any]) -> str:
    e = html.escape
    best = next((f for f in s["finals"] if f["method"] != "fp32"), None)
    facts = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in lines(s))
    finals = "".join(f"<tr><td>{e(f['method'])}</td><td>{e(f['bits'])}</td><td class=n>{_num(f['top1'])}</td>"
                     f"<td class=n>{_num(f['ci95'])}</td><td class=n>{f['seeds']}/{f['of']}</td>"
                     f"<td class=n>{_num(f['qat_s'], '.1f')}</td></tr>" for f in s["finals"])
    screen = ""
    for m, curve in s["curves"].items():
        cells = {c["rung"]: (_num(c["top1"]) if c["status"] == "ok" else c["status"]) for c in curve}
        screen += (f"<tr><td>{e(m)}</td>" + "".join(f"<td class=n>{e(cells.get(i + 1, ''))}</td>"
                                                     for i in range(len(s["rungs"]))) + f"<td>{e(_cut(curve))}</td></tr>")
    heads = "".join(f"<th>rung {i + 1} ({n} ep)</th>" for i, n in enumerate(s["rungs"]))
    title = f"Advice: {s['model']} on {s['dataset']} at {', '.join(s['bits'])}"
    verdict = (f"<p class=best id=verdict>Use <strong>{e(best['method'])}</strong>: test top-1 {_num(best['top1'])} "
               f"± {_num(best['ci95'])} (95 % interval, {best['seeds']} seed(s))</p>") if best else ""
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>" + e(title) + "</title><style>" + STYLE +
            "</style></head><body><main><h1>" + e(title) + "</h1>" + verdict + "<dl>" + facts + "</dl>"
            "<h2>Finalists (test split, full recipe)</h2><table id=finals><tr><th>method</th><th>bits</th>"
            "<th>top-1</th><th>± 95 %</th><th>seeds</th><th>QAT s</th></tr>" + finals + "</table>"
            "<h2>Screening (validation split)</h2>" + chart(s) + "<table id=screening><tr><th>method</th>" + heads +
            "<th>outcome</th></tr>" + screen + "</table><h2>Reproduce</h2><pre id=command>" + e(s["command"]) +
            "</pre></main></body></html>\n")


def write_report(s: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``advice.md`` and ``advice.html`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page_path = out_dir / "advice.md", out_dir / "advice.html"
    atomic_write_text(md, markdown(s))
    atomic_write_text(page_path, page(s))
    return md, page_path
