"""No tracked file cites the project's issue tracker by number.

Nobody who reads the repository can open that tracker, so "see issue N" explains nothing: a
comment, docstring or doc states the reason itself. ``leaderboards/`` is exempt: its files are
published snapshots of past versions and are never edited.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The word, optionally plural and "#", then a number (examples below, built so that this file
#: does not match itself); nothing broader, so "tissue", "the issue" or "issued 3 times" never match.
TRACKER_REF = re.compile(r"\bissues?\s?#?\d+", re.IGNORECASE)

#: Published snapshots (``qbench/leaderboards`` is a symlink to the same folder).
EXEMPT = ("leaderboards/", "qbench/leaderboards")

SKIP_DIRS = {".git", "__pycache__", "build", "dist", ".tox", ".venv", "venv", "node_modules"}


def tracked_files() -> list[str]:
    """``git ls-files`` in a checkout; elsewhere (an sdist, a copied tree) every file below ROOT."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
        files = [f for f in out.stdout.decode().split("\0") if f]
        if files:
            return files
    except (OSError, subprocess.SubprocessError):
        pass
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        found.extend(Path(dirpath, f).relative_to(ROOT).as_posix() for f in filenames)
    return found


def tracker_refs(text: str) -> list[str]:
    return [m.group(0) for m in TRACKER_REF.finditer(text)]


def test_the_pattern_matches_references_and_nothing_else() -> None:
    refs = ["issue" + " 19", "Issue" + " #15", "issues" + " 16", "issue" + "#7"]
    assert tracker_refs(f"the guard ({refs[0]}), {refs[1]} parts 5 and 6, {refs[2]}; {refs[3]}") == refs
    assert tracker_refs("tissue 3; the issue is speed; issued 3 times; issue: 4 bits") == []


def test_no_tracked_file_cites_the_issue_tracker() -> None:
    files = tracked_files()
    assert "README.md" in files and "qbench/__init__.py" in files, files[:5]  # the tree itself was read
    bad: list[str] = []
    for rel in files:
        path = ROOT / rel
        if rel.startswith(EXEMPT) or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary (images)
            continue
        lines = data.decode("utf-8", errors="replace").splitlines()
        hits = [f"{rel}:{n}: {line.strip()}" for n, line in enumerate(lines, 1) if tracker_refs(line)]
        bad.extend(hits)
    assert not bad, ("state the reason instead of an issue number (readers cannot open the tracker):\n"
                     + "\n".join(bad))
