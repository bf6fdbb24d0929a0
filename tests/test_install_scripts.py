"""The install scripts say what they install on the system and why, and QBENCH_NO_APT=1 stops them.

The scripts run as root on CI and on many users' machines: a package manager call must never be a
surprise. These tests source the scripts' shared helper and put a recording ``apt-get`` first on
PATH, so nothing is installed while the order of "say, then install" is checked.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HELPER = REPO / "scripts" / "system-packages.sh"


def run_helper(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "apt.log"
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\necho "apt-get $*" >&2\n')
    (fake / "apt-get").chmod(0o755)
    script = f'. {HELPER}; system_packages caller.sh "a reason" "what is lost" gcc make'
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{fake}:/usr/bin:/bin", **env})
    return res, (log.read_text().splitlines() if log.exists() else [])


@pytest.mark.skipif(os.geteuid() != 0, reason="the install branch runs as root only")
def test_each_package_is_named_with_its_reason_before_apt_runs(tmp_path: Path) -> None:
    res, calls = run_helper(tmp_path, QBENCH_NO_APT="")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    said = next(i for i, line in enumerate(lines) if "installing Debian package(s) gcc make: a reason" in line)
    first_apt = next(i for i, line in enumerate(lines) if line.startswith("apt-get"))
    assert said < first_apt and "QBENCH_NO_APT=1 skips" in lines[said]
    assert calls == ["apt-get update -qq", "apt-get install -y -qq gcc make"]


def test_qbench_no_apt_skips_and_says_what_is_lost(tmp_path: Path) -> None:
    res, calls = run_helper(tmp_path, QBENCH_NO_APT="1")
    assert res.returncode == 0 and calls == []
    assert "caller.sh: not installing Debian package(s) gcc make (QBENCH_NO_APT=1): what is lost" in res.stderr


@pytest.mark.parametrize("script", ["install.sh", "test.sh"])
def test_the_scripts_install_system_packages_only_through_the_helper(script: str) -> None:
    text = (REPO / "scripts" / script).read_text()
    assert ". scripts/system-packages.sh" in text
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "apt-get" in line]  # no direct call past the announcement
