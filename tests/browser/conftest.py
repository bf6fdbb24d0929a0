"""Browser fixtures: Debian's Chromium (/usr/bin/chromium), driven by Playwright, headless.

Never a downloaded browser: Playwright is pointed at the system binary. The tests skip, saying
why, only when that binary is absent (`.ci/run` installs it); a missing Python driver is an
error, since CI installs it with the test extra.
"""
from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

CHROMIUM = Path("/usr/bin/chromium")
#: The flags this machine needs: no sandbox as root, and no background traffic to a closed network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
#: Screenshots land here (git-ignored by the .gitignore written into it), so CI can keep them.
ARTIFACTS = REPO / "test-artifacts" / "browser"


@dataclass
class Opened:
    """A page and what its console said: errors fail the test that opened it."""
    page: Any
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's browser with `apt-get install -y chromium "
                    "chromium-driver` (.ci/run does) to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # CI installs it: a missing driver is a failure, not a skip
        raise RuntimeError("The browser tests need Playwright's Python driver: `pip install playwright` "
                           "(it is in qbench's `test` extra); no browser download is needed.") from exc
    with sync_playwright() as pw:  # Playwright gives each launch a new empty profile
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """open_page(path) -> Opened: a fresh page at ``file://path``, console errors collected."""
    contexts = []

    def _open(path: Path, width: int = 1400, height: int = 900) -> Opened:
        ctx = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        page = ctx.new_page()
        opened = Opened(page)
        page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.errors.append(f"uncaught: {e}"))
        page.on("dialog", lambda d: (opened.errors.append(f"dialog: {d.message}"), d.dismiss()))
        page.goto(Path(path).resolve().as_uri())
        page.wait_for_selector("body[data-ready='true'], body > main", timeout=10_000)
        return opened

    yield _open
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# screenshots from tests/browser: test artefacts, never committed\n*\n")
    return ARTIFACTS


@pytest.fixture(scope="session")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A leaderboards root with pages written by the code under test: copies of the committed
    suites (real results) plus the sample suite (flags, diff, failed job, hostile name)."""
    from html_sample import SUITE, publish_sample

    from qbench.report.html import write_pages
    from qbench.report.leaderboard import published_versions

    root = tmp_path_factory.mktemp("leaderboards")
    for suite_dir in sorted(p for p in (REPO / "leaderboards").iterdir() if p.is_dir()):
        for v in published_versions(REPO / "leaderboards", suite_dir.name):
            src, dst = suite_dir / f"v{v}", root / suite_dir.name / f"v{v}"
            dst.mkdir(parents=True)
            for f in ("results.csv", "diff.csv", "meta.json", "leaderboard.md"):
                if (src / f).exists():
                    shutil.copy(src / f, dst / f)
        write_pages(root, suite_dir.name)
    publish_sample(root)
    assert (root / SUITE / "v2" / "index.html").exists()
    return root
