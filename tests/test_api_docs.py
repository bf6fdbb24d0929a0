"""docs/plugin-contract.md's "Helpers" section is generated from qbench.api's docstrings and in sync."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from qbench import apidoc

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin-contract.md"


def test_the_helpers_section_is_generated_from_the_code() -> None:
    text = DOC.read_text()
    assert apidoc.rewrite(text) == text, "docs/plugin-contract.md's helpers are stale: run python -m qbench.apidoc"


def test_every_helper_is_listed_with_its_signature_and_summary() -> None:
    text = DOC.read_text()
    section = text[text.index(apidoc.BEGIN):text.index(apidoc.END)]
    helpers = apidoc.helpers()
    assert {"mse_search", "clip_grid", "calibration_sample", "round_ste", "load_kernel"} <= set(helpers)
    for name, fn in helpers.items():
        assert f"- `{name}(" in section, name
        assert apidoc.summary(fn) in section, name


def test_every_helper_says_what_it_does() -> None:
    """A docstring whose first paragraph is a sentence or more (the doc shows nothing else)."""
    short = [n for n, fn in apidoc.helpers().items() if len(apidoc.summary(fn).split()) < 6]
    assert not short, f"helpers whose docstring summary says too little for a plugin author: {short}"


def test_the_helpers_are_the_functions_the_api_exports() -> None:
    import qbench.api as api

    functions = {n for n in api.__all__ if inspect.isfunction(getattr(api, n))}
    assert set(apidoc.helpers()) == functions


def test_a_stale_section_is_reported_and_rewritten(tmp_path: Path) -> None:
    page = tmp_path / "plugin-contract.md"
    page.write_text(f"# intro\n\n{apidoc.BEGIN}\n- `mse_search()`: STALE-ENTRY\n{apidoc.END}\n\nafter\n")
    assert apidoc.main(["--doc", str(page), "--check"]) == 1
    assert apidoc.main(["--doc", str(page)]) == 0
    assert apidoc.main(["--doc", str(page), "--check"]) == 0
    text = page.read_text()
    assert text.startswith("# intro\n\n") and text.endswith("\n\nafter\n") and "STALE-ENTRY" not in text
    assert apidoc.summary(apidoc.helpers()["mse_search"]) in text


def test_a_page_without_the_markers_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "plugin-contract.md"
    page.write_text("# no markers\n")
    with pytest.raises(ValueError, match="lacks the markers"):
        apidoc.main(["--doc", str(page)])
