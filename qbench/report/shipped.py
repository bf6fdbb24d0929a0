"""Where published leaderboards are: a directory, or a suite name looked up in the copies shipped
inside the package, so ``qbench compare --against quick`` works from a plugin's own repository."""
from __future__ import annotations

import re
from pathlib import Path

from qbench.errors import QbenchError
from qbench.report.leaderboard import published_versions

_SPEC = re.compile(r"^(?P<suite>[A-Za-z0-9_.-]+?)(?:@v?(?P<version>\d+))?$")

#: Extra leaderboard roots searched first (``os.pathsep``-separated), e.g. a team's own published runs.
ROOTS_ENV = "QBENCH_LEADERBOARDS"


def leaderboard_roots() -> list[Path]:
    """Directories holding ``<suite>/v<version>/results.csv``, in lookup order: those in
    ``$QBENCH_LEADERBOARDS``, the copy shipped in the package (``qbench/leaderboards``: a symlink to
    the repository's ``leaderboards/`` in a checkout, real files in a wheel or sdist), then a
    checkout's ``leaderboards/`` beside the package (where the symlink cannot exist, e.g. Windows)."""
    import os

    import qbench

    pkg = Path(qbench.__file__).parent
    extra = [Path(p) for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p]
    roots = [*extra, pkg / "leaderboards", pkg.parent / "leaderboards"]
    out: list[Path] = []
    for r in roots:
        if r.is_dir() and r.resolve() not in {o.resolve() for o in out}:
            out.append(r)
    return out


def resolve_against(against: str | Path, version: int | None = None) -> Path:
    """The leaderboard version directory (holding results.csv) that ``against`` names.

    ``against``: a directory (a suite's ``leaderboards/<suite>`` or a ``v<N>`` directory inside
    it), or ``SUITE`` / ``SUITE@vN`` from the shipped leaderboards. ``version``: the run's suite
    version, used when ``against`` names no version.
    """
    path = Path(against)
    if path.exists():
        if (path / "results.csv").exists():
            return path
        if version is not None:
            return path / f"v{version}"
        found = published_versions(path.parent, path.name)
        if not found:
            raise QbenchError(f"No published leaderboard under {str(path)!r}.")
        return path / f"v{found[-1]}"
    m = _SPEC.match(str(against))
    roots = leaderboard_roots()
    if not m:
        raise QbenchError(f"--against {str(against)!r} is neither a directory nor SUITE[@vN] (e.g. quick@v1).")
    suite, asked = m.group("suite"), m.group("version")
    want = int(asked) if asked else version
    for root in roots:
        vers = published_versions(root, suite)
        if vers:
            if want is None:
                return root / suite / f"v{vers[-1]}"
            if want in vers:
                return root / suite / f"v{want}"
            raise QbenchError(f"The shipped leaderboard of suite {suite!r} has versions "
                              f"{', '.join(f'v{v}' for v in vers)}, not v{want}. Results from different suite "
                              "versions are never compared; publish this version first, or upgrade qbench.")
    shipped = sorted({p.parent.parent.name for r in roots for p in r.glob("*/v*/results.csv")})
    raise QbenchError(f"No leaderboard {str(against)!r}: not a directory, and not a shipped suite "
                      f"({', '.join(shipped) or 'none shipped'}; looked in "
                      f"{', '.join(str(r) for r in roots) or 'no leaderboard directory'}).")
