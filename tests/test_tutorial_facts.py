"""The facts docs/writing-a-plugin.md states in prose agree with what its commands and qbench do.

tests/test_tutorial.py runs the tutorial's commands; this file checks the sentences around them,
each against one source, so prose and code cannot drift apart silently:

* a bit-width stated in a section (``W2A2``, ``4-bit``) is the ``--bits`` of that section's
  ``qbench run`` / ``qbench export`` command;
* the whole quick suite is described by one sentence built from ``qbench/suites/quick.toml``;
* the file tree of step 1 is the tree ``qbench new-plugin`` writes in a qbench checkout.
"""
from __future__ import annotations

import re
from pathlib import Path

import tomllib

import qbench
from qbench.plugin.scaffold import CONFORMANCE_TEST, host_runs_conformance, render_plugin

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "writing-a-plugin.md"
QUICK_SUITE = Path(qbench.__file__).parent / "suites" / "quick.toml"
METHOD = "mymethod"

FENCE = re.compile(r"^[ \t]*```(\w*)[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
BITS_IN_PROSE = re.compile(r"\bW\d+A\d+\b|\b\d+[- ]bits?\b")


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def whole_suite_sentence(suite_toml: Path = QUICK_SUITE) -> str:
    """What the quick suite runs, as the tutorial must say it: data; models; bits; seeds."""
    suite = tomllib.loads(suite_toml.read_text())
    datasets = [d["name"] for d in suite["datasets"]]
    models = [m.get("alias", m["name"]) for m in suite["models"]]
    seeds = [str(s) for s in suite["seeds"]]
    return (f"({_and(datasets)}; {_and(models)}; {_and(list(suite['bits']))}; "
            f"seed{'s' if len(seeds) > 1 else ''} {_and(seeds)})")


def sections(text: str) -> list[tuple[str, str, list[str]]]:
    """(heading, prose without fenced blocks, command lines of the fenced blocks) per ``##`` section."""
    out = []
    for chunk in re.split(r"^(?=## )", text, flags=re.M):
        heading = chunk.splitlines()[0] if chunk else ""
        commands = [line.strip() for _, body in FENCE.findall(chunk) for line in re.sub(r"\\\n", " ", body).splitlines()
                    if line.strip().startswith("qbench ")]
        out.append((heading, FENCE.sub("", chunk), commands))
    return out


def command_bits(command: str) -> str | None:
    """``--bits 2`` / ``--bits W2A2`` of a command, as ``W2A2``; None without the option."""
    m = re.search(r"--bits[ =](\S+)", command)
    if not m:
        return None
    value = m.group(1)
    return f"W{value}A{value}" if value.isdigit() else value


def stated_bits(prose: str) -> list[str]:
    """The bit-widths a piece of prose states, each as ``W<b>A<b>`` (a bare "4-bit" is W4A4)."""
    found = []
    for m in BITS_IN_PROSE.finditer(prose):
        n = re.match(r"\d+", m.group(0))
        found.append(f"W{n.group(0)}A{n.group(0)}" if n else m.group(0))
    return found


def file_tree(block: str) -> set[str]:
    """The files of an indented listing (two spaces a level, folders end in ``/``), below its root."""
    lines = [line for line in block.splitlines() if line.strip()]
    stack: list[str] = []
    files = set()
    for line in lines[1:]:
        depth = (len(line) - len(line.lstrip())) // 2 - 1
        name = line.split()[0]
        stack[depth:] = [name.rstrip("/")]
        if not name.endswith("/"):
            files.add("/".join(stack))
    return files


def test_the_whole_suite_sentence_is_the_suite_file() -> None:
    sentence = whole_suite_sentence()
    assert re.sub(r"\s+", " ", DOC.read_text()).count(sentence) == 1, (
        f"docs/writing-a-plugin.md must describe the whole quick suite once as {sentence!r} "
        f"(from {QUICK_SUITE.name})")


def test_every_bit_width_in_the_prose_is_its_sections_command() -> None:
    sentence = whole_suite_sentence()
    checked = 0
    for heading, prose, commands in sections(DOC.read_text()):
        prose = re.sub(r"\s+", " ", prose).replace(sentence, "")
        allowed = {b for b in map(command_bits, commands) if b}
        for bits in stated_bits(prose):
            checked += 1
            assert bits in allowed, (f"{heading!r} states {bits}, but its commands run "
                                     f"{sorted(allowed) or 'no --bits'}: {commands}")
    assert checked >= 1  # step 5 states the bits of its command


def test_the_bit_checks_catch_a_mismatch() -> None:
    """The parsing above, on the mistake it exists for: prose at W4A4 next to ``--bits 2``."""
    doc = "## 5. Run\n\n```bash\nqbench run --suite quick --bits 2\n```\n\nfine-tunes at W4A4, 4-bit.\n"
    (_, prose, commands), = [s for s in sections(doc) if s[0].startswith("## 5")]
    assert [command_bits(c) for c in commands] == ["W2A2"]
    assert stated_bits(prose) == ["W4A4", "W4A4"]


def test_step_1_lists_the_files_new_plugin_writes_in_this_checkout() -> None:
    """The tutorial runs from the repository root, where the host's tests run conformance, so the
    scaffold writes no conformance test; elsewhere it adds exactly that file, as the text says."""
    text = DOC.read_text()
    listing = next(body for lang, body in FENCE.findall(text) if body.startswith(f"plugins/qbench-{METHOD}/"))
    assert host_runs_conformance(REPO / "plugins")
    in_checkout = set(render_plugin(METHOD, conformance_test=False))
    assert file_tree(listing) == in_checkout
    assert set(render_plugin(METHOD)) - in_checkout == {CONFORMANCE_TEST}
    assert f"`new-plugin` also writes `{CONFORMANCE_TEST}`" in re.sub(r"\s+", " ", text)
