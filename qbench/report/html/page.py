"""Write the static pages: one ``index.html`` per published version, and ``<root>/index.html``
listing every suite and version.

Each page is one self-contained file (CSS, JavaScript and data inlined), so it opens from
file://, from a CI artefact and from GitHub Pages alike, with no CDN and no server. Output is
deterministic (no timestamps, stable float rounding): regenerating an unchanged leaderboard
leaves git clean.
"""
from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from qbench.atomic import atomic_write_text
from qbench.errors import QbenchError
from qbench.report.html.data import page_data
from qbench.report.ranks import RANK_RULE
from qbench.report.leaderboard import published_versions, version_dir

PAGE = "index.html"


def asset(name: str) -> str:
    """A file shipped beside this module (package data: template.html, app.js, style.css)."""
    return resources.files("qbench.report.html").joinpath(name).read_text(encoding="utf-8")


def script_json(data: Any) -> str:
    """JSON safe inside <script>: ASCII only (no U+2028 surprises) and no ``<`` at all, so no
    method name or command can close the element early or open a comment (``<!--``)."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(data: dict[str, Any]) -> str:
    """The HTML of one version page from :func:`page_data`'s dict."""
    title = f"qbench leaderboard: {data['suite']} v{data['version']}"
    parts = {"__TITLE__": html.escape(title), "__SUITE__": html.escape(str(data["suite"])),
             "__VERSION__": str(int(data["version"])), "__CSS__": asset("style.css"), "__JS__": asset("app.js"),
             "__RANK_RULE__": html.escape(RANK_RULE), "__DATA__": script_json(data)}
    out = asset("template.html")
    for token in ("__TITLE__", "__SUITE__", "__VERSION__", "__RANK_RULE__", "__CSS__", "__JS__"):
        out = out.replace(token, parts[token])
    return out.replace("__DATA__", parts["__DATA__"])  # last: the data may contain the other tokens


def write_version_page(d: Path, suite: str) -> Path:
    """``<d>/index.html`` for the version directory ``d`` (``<root>/<suite>/v<N>``)."""
    path = Path(d) / PAGE
    atomic_write_text(path, render_page(page_data(Path(d), suite)))
    return path


def suites(root: Path) -> list[str]:
    """Suites with at least one published version under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and published_versions(root, p.name))


def _version_summary(d: Path) -> dict[str, Any]:
    df = pd.read_csv(d / "results.csv")
    ok = df[df["status"] == "ok"] if "status" in df else df

    def join(col: str) -> str:
        return ", ".join(sorted({str(v) for v in ok[col].dropna()})) if col in ok else ""

    return {"rows": len(df), "ok": len(ok), "methods": ok["method"].nunique() if "method" in ok else 0,
            "datasets": join("dataset"), "models": join("model"), "bits": join("bits"),
            "date": str(ok["date"].dropna().max())[:10] if "date" in ok and ok["date"].notna().any() else ""}


def render_index(root: Path) -> str:
    """The top-level page: every suite, every version, newest first, with links that stay
    relative (file:// and a Pages sub-path both work)."""
    root = Path(root)
    names = suites(root)
    body = []
    for suite in names:
        rows = []
        for v in reversed(published_versions(root, suite)):
            d = version_dir(root, suite, v)
            s = _version_summary(d)
            rel = f"{suite}/v{v}/"
            fix = f"qbench leaderboard {html.escape(suite)} --version {v} --html"
            page = (f'<a href="{html.escape(rel + PAGE)}">v{v}</a>' if (d / PAGE).exists()
                    else f"v{v} (no page yet: <code>{fix}</code>)")
            links = " · ".join(f'<a href="{html.escape(rel + f)}">{f}</a>' for f in ("leaderboard.md", "results.csv")
                               if (d / f).exists())
            rows.append(f"<tr><td>{page}</td><td class=\"num\">{s['ok']} / {s['rows']}</td><td class=\"num\">"
                        f"{s['methods']}</td><td>{html.escape(s['datasets'])}</td><td>{html.escape(s['models'])}</td>"
                        f"<td>{html.escape(s['bits'])}</td><td>{html.escape(s['date'])}</td><td>{links}</td></tr>")
        body.append(f'<section class="suite" id="suite-{html.escape(suite)}"><h2>{html.escape(suite)}</h2>'
                    '<div class="scroll"><table><thead><tr><th>version</th><th class="num">jobs ok</th>'
                    '<th class="num">methods</th><th>datasets</th><th>models</th><th>bits</th><th>trained</th>'
                    f'<th>files</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>')
    if not body:
        body.append('<p class="muted">Nothing published yet: <code>qbench publish SUITE</code> after a run.</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"generator\" content=\"qbench\">\n<title>qbench leaderboards</title>\n"
            f"<style>\n{asset('style.css')}</style>\n</head>\n<body>\n<header><h1>qbench leaderboards</h1>\n"
            "<p class=\"muted\">Quantization-aware-training methods compared on one frozen recipe per suite. "
            "Each version's page has a sortable, filterable table, Pareto charts of top-1 against cost, every "
            "row's provenance and the diff against the previous version. Versions of a suite are never mixed."
            "</p></header>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def write_index(root: Path) -> Path:
    path = Path(root) / PAGE
    atomic_write_text(path, render_index(root))
    return path


def write_pages(root: Path, suite: str, versions: list[int] | None = None) -> list[Path]:
    """Pages for ``versions`` of ``suite`` (default: every published one, so each page's version
    links include the newest) and the top-level index. Returns the paths written."""
    known = published_versions(root, suite)
    wanted = known if versions is None else versions
    missing = [v for v in wanted if v not in known]
    if missing:
        raise QbenchError(f"Suite {suite!r} has no published version {missing} under {str(root)!r} "
                          f"(published: {known or 'none'}). Publish it first with `qbench publish {suite}`.")
    paths = [write_version_page(version_dir(root, suite, v), suite) for v in wanted]
    return [*paths, write_index(root)]


def publish_pages(root: Path, suite: str) -> str:
    """Write the pages after ``qbench publish`` and say what happened, in one line.

    The pages are a view of files already published, so a failure here is reported (with the
    command that retries) and never fails the publication. Called by the command rather than
    by :func:`qbench.report.leaderboard.publish`, which this package imports: no import cycle."""
    try:
        paths = write_pages(root, suite)
    except Exception as exc:  # noqa: BLE001 - whatever broke the view, the rows are published
        return (f"[yellow]Published, but the HTML pages were not written[/yellow] ({type(exc).__name__}: {exc}); "
                f"write them with `qbench leaderboard {suite} --html --root {root}`.")
    return "Pages: " + ", ".join(str(p) for p in paths)
