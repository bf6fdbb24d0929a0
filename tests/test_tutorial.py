"""docs/writing-a-plugin.md, executed: the tutorial's ```bash commands, in order, in a temporary folder.

The commands are read from the document itself, so the tutorial and this test cannot drift. They
run in a throw-away virtual environment (``python -m venv --system-site-packages`` in tmp, so it
sees the installed qbench, torch and friends) with that venv's ``bin/`` first on PATH: the
generated plugin is pip-installed there only, and the main environment is never touched. The
workspace is in tmp too (``--workspace`` in the doc, ``$QBENCH_WORKSPACE`` as a backstop).

The temporary folder stands in for the repository root the tutorial runs from: ``leaderboards``
is a copy of the repository's committed leaderboards and ``tests`` a link to the host's tests
(step 3 runs their conformance suite; beside ``plugins/`` they also tell ``new-plugin`` that the
host runs it, so, as for a reader, no conformance test is generated). One adjustment is for this
machine and not for the reader: pip also gets ``--no-build-isolation`` (offline, and seconds
instead of a fresh setuptools download).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tomllib

import qbench
from qbench.cli import cli, main
from qbench.plugin.scaffold import render_plugin
from qbench.testing import MethodConformance

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "writing-a-plugin.md"
LEADERBOARDS = REPO / "leaderboards"
QUICK_SUITE = Path(qbench.__file__).parent / "suites" / "quick.toml"
METHOD = "mymethod"

#: Generous limits (seconds) per command: the CI machine is shared; the run step trains one FP
#: ResNet-20 and one QAT job on the embedded digits.
TIMEOUTS = {"pip": 600, "python": 1800, "qbench": 3600}


def doc_commands(text: str) -> list[str]:
    """Every command of the ```bash blocks, in order (``\\`` continuations joined, comments dropped)."""
    commands: list[str] = []
    for block in re.findall(r"^[ \t]*```bash[ \t]*\n(.*?)^[ \t]*```", text, flags=re.M | re.S):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def compare_unavailable() -> str | None:
    """Why the tutorial's compare step cannot run here, or None when it can."""
    if "compare" not in cli.commands:
        return "`qbench compare` is not implemented yet"
    version = tomllib.loads(QUICK_SUITE.read_text())["version"]
    if not (LEADERBOARDS / "quick" / f"v{version}" / "results.csv").exists():
        return (f"no committed leaderboard for the quick suite v{version} yet "
                f"(leaderboards/quick/v{version}/results.csv; `qbench publish quick` writes it)")
    return None


def test_the_tutorial_shows_every_step_in_order() -> None:
    """The steps the tutorial promises, each once and in this order (generate to compare)."""
    commands = doc_commands(DOC.read_text())
    expected = [
        f"qbench new-plugin {METHOD}",
        f"pip install -e plugins/qbench-{METHOD}",
        "qbench list methods",
        f"python -m pytest plugins/qbench-{METHOD}/tests",
        "python -m pytest tests/test_conformance.py",
        f"qbench run --suite quick --method {METHOD} --model resnet20 --bits 2 --seeds 1 --workspace ws",
        "qbench compare ws/quick/results.csv --against quick",
    ]
    assert len(commands) == len(expected), commands
    for command, start in zip(commands, expected):
        assert command.startswith(start), (command, start)


def test_every_qbench_option_in_the_tutorial_exists() -> None:
    """Each ``qbench SUB --option`` of the tutorial names a real subcommand and real options."""
    for command in doc_commands(DOC.read_text()):
        argv = shlex.split(command)
        if argv[0] != "qbench":
            continue
        sub = argv[1]
        if sub == "compare" and sub not in cli.commands:
            continue  # reported by test_the_compare_step_can_run
        assert sub in cli.commands, f"the tutorial runs `qbench {sub}`, which does not exist"
        options = {o for p in cli.commands[sub].params for o in getattr(p, "opts", [])}
        used = {a.split("=")[0] for a in argv[2:] if a.startswith("--")}
        assert used <= options, f"`{command}` uses options {sorted(used - options)} that `qbench {sub}` lacks"


def test_the_compare_step_can_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The step needs the command and a committed leaderboard; compared with itself it must pass."""
    reason = compare_unavailable()
    if reason:
        pytest.skip(f"the tutorial's compare step is skipped: {reason}")
    version = tomllib.loads(QUICK_SUITE.read_text())["version"]
    committed = LEADERBOARDS / "quick" / f"v{version}" / "results.csv"
    try:
        main(["compare", str(committed), "--against", str(LEADERBOARDS / "quick")])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 0, out + err


def make_venv(root: Path) -> Path:
    """A venv over the installed packages, with ``pip`` and ``qbench`` scripts in its bin/.

    ``--without-pip``: the venv's own bundled pip/setuptools would shadow the installed, newer
    ones (and that old setuptools cannot build an editable wheel offline). The two scripts run the
    installed pip and qbench with the venv's interpreter, so pip installs into the venv only.

    ``--system-site-packages`` shows the *base* interpreter's packages; when the tests themselves
    run in a virtualenv (where most users install), qbench lives in that venv instead. A ``.pth``
    file that calls ``site.addsitedir`` on the running interpreter's site-packages makes them
    visible too, editable installs included (addsitedir processes their own .pth files).
    """
    import site

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    inner = subprocess.run([str(bindir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    outer = [d for d in site.getsitepackages() if Path(d).is_dir()]
    Path(inner, "_qbench_outer_env.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in outer))
    for name, entry in (("pip", "from pip._internal.cli.main import main"), ("qbench", "from qbench.cli import main")):
        script = bindir / name
        # guarded as pip's console scripts are: a spawned worker (qbench run --workers) re-imports it
        script.write_text(f"#!{bindir / 'python'}\nimport sys\n{entry}\nif __name__ == '__main__':\n"
                          "    sys.exit(main())\n")
        script.chmod(0o755)
    return bindir


def clean_env(bindir: Path, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PIP_REQUIRE_VIRTUALENV"))}
    env.pop("PYTHONHOME", None)
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(bindir.parent),
               QBENCH_WORKSPACE=str(root / "qbench-runs"), COLUMNS="200", PYTHONDONTWRITEBYTECODE="1")
    return env


def run_step(command: str, cwd: Path, env: dict[str, str], bindir: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command)
    exe = shutil.which(argv[0], path=env["PATH"])
    assert exe and Path(exe).parent == bindir, f"`{argv[0]}` must come from the test's venv, got {exe}"
    if argv[0] == "pip":
        # the plugin's only dependency (qbench) is installed, so pip resolves nothing; offline, no
        # build isolation keeps pip from fetching setuptools for the editable build
        argv.insert(2, "--no-build-isolation")
    res = subprocess.run([exe, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=TIMEOUTS.get(argv[0], 600))
    assert res.returncode == 0, f"`{command}` exited {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res


def test_the_tutorial_runs_from_zero_to_a_result_row(tmp_path: Path) -> None:
    commands = doc_commands(DOC.read_text())
    bindir = make_venv(tmp_path)
    env = clean_env(bindir, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    if LEADERBOARDS.is_dir():  # a copy: nothing the tutorial runs can change the committed files
        shutil.copytree(LEADERBOARDS, work / "leaderboards")
    (work / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    skip_compare = compare_unavailable()
    outputs: dict[str, str] = {}
    for command in commands:
        if command.startswith("qbench compare") and skip_compare:
            continue  # test_the_compare_step_can_run reports why
        res = run_step(command, work, env, bindir)
        outputs[command] = res.stdout + res.stderr

    plugin = work / "plugins" / f"qbench-{METHOD}"
    built = ("__pycache__", "build")  # what pip and Python add to the folder, not what new-plugin wrote
    written = {p.relative_to(plugin).as_posix() for p in plugin.rglob("*") if p.is_file()
               and not any(part in built or part.endswith(".egg-info") for part in p.relative_to(plugin).parts)}
    assert written == set(render_plugin(METHOD, conformance_test=False)), written  # step 1's listing
    # Installed in the venv only: the main environment does not see the plugin.
    site = subprocess.run([str(bindir / "python"), "-c", f"import qbench_{METHOD}; print(qbench_{METHOD}.__file__)"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert site.returncode == 0 and str(plugin) in site.stdout, site.stderr
    main_env = subprocess.run([sys.executable, "-c", f"import qbench_{METHOD}"], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)
    assert main_env.returncode != 0, "the tutorial's plugin leaked into the main environment"

    listed = next(out for cmd, out in outputs.items() if cmd == "qbench list methods")
    assert re.search(rf"\b{METHOD}\b.*\b{METHOD}\b.*v1", listed), listed  # name, plugin, version
    tests = next(out for cmd, out in outputs.items() if cmd.startswith(f"python -m pytest plugins/qbench-{METHOD}"))
    assert re.search(r"\b\d+ passed\b", tests) and " failed" not in tests and " skipped" not in tests, tests
    conformance = next(out for cmd, out in outputs.items() if cmd.startswith("python -m pytest tests/test_conformance"))
    checks = sum(name.startswith("test_") for name in dir(MethodConformance))
    assert re.search(rf"\b{checks} passed\b", conformance) and " failed" not in conformance, conformance

    rows = pd.read_csv(work / "ws" / "quick" / "results.csv")
    mine = rows[rows["method"] == METHOD]
    assert len(mine) == 1, rows[["method", "status"]]
    row = mine.iloc[0]
    assert row["status"] == "ok", row.get("reason")
    assert row["model"] == "resnet20" and row["bits"] == "W2A2" and int(row["seed"]) == 0
    assert bool(row["levels_ok"]), "the generated quantizers kept more levels than 2^bits"
    assert 0.0 <= float(row["top1"]) <= 100.0
    assert set(rows["method"]) == {"fp32", METHOD}
    if not skip_compare:
        out = next(out for cmd, out in outputs.items() if cmd.startswith("qbench compare"))
        assert METHOD in out and "new" in out, out
