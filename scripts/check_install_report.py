"""Read a ``pip install --report`` file and fail if pip chose a package this repository did not build.

Why: the host's import name, qbench, is also the name of an unrelated PyPI project. A plugin
installed before the host must resolve the host from this repository's wheels or fail to resolve;
it must never bring in a namesake. This script is the check behind that promise, used by
scripts/check-dist.sh on reports from a fresh virtualenv.

Usage: python scripts/check_install_report.py REPORT.json WHEEL_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.utils import canonicalize_name


def problems(report: dict, wheel_dir: Path) -> list[str]:
    """One line per chosen package in qbench's namespace that did not come from ``wheel_dir``
    (or a plugin folder of this repository, for the package being installed)."""
    repo = Path(__file__).resolve().parents[1]
    out = []
    for item in report.get("install", []):
        name = canonicalize_name(item["metadata"]["name"])
        if not name.startswith("qbench"):
            continue
        url = item.get("download_info", {}).get("url", "")
        path = Path(unquote(urlparse(url).path)).resolve() if url.startswith("file:") else None
        if path is None or not (path.is_relative_to(wheel_dir.resolve()) or path.is_relative_to(repo / "plugins")):
            out.append(f"{name} {item['metadata']['version']} would come from {url or 'an index'}, "
                       f"not from {wheel_dir} or this repository")
    return out


def main(argv: list[str]) -> int:
    report_path, wheel_dir = Path(argv[0]), Path(argv[1])
    report = json.loads(report_path.read_text())
    found = problems(report, wheel_dir)
    for line in found:
        print(f"check_install_report: {line}", file=sys.stderr)
    chosen = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in report.get("install", [])
                    if canonicalize_name(i["metadata"]["name"]).startswith("qbench"))
    print(f"check_install_report: {report_path.name}: qbench packages chosen: {', '.join(chosen) or 'none'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
