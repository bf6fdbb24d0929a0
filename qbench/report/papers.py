"""Published numbers beside ours: a suite's *papers file* and the columns it adds to a leaderboard.

A suite may name a TOML file (``papers = "papers/cifar10-resnet20.toml"``, relative to the suite
file) holding what the papers report for its setting, one ``[[entry]]`` per (method, bits): the
top-1, the FP top-1 that paper started from, and where the numbers are printed. ``qbench
publish`` copies it beside the version's ``suite.toml`` (same relative path), so a published
leaderboard keeps the numbers it was compared with, and ``NAME@vN`` still finds them.

FP baselines differ between papers and from ours (each paper trains its own FP model), so the
table shows the raw difference (ours minus the paper's top-1) and the difference of the drops
from each side's own FP model; the second is the fairer comparison of methods, the first says
how far what qbench measured is from what a reader of the paper expects. A suite without a
papers file renders exactly as before: nothing here runs.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qbench.contract.bits import BitTarget
from qbench.errors import QbenchError

if TYPE_CHECKING:  # pandas is imported by what renders tables; loading a suite does not need it
    import pandas as pd

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

_ENTRY_KEYS = {"method", "bits", "top1", "fp_top1", "source", "dataset", "model", "note"}
_REQUIRED = ("method", "bits", "top1", "fp_top1", "source")
#: What a papers file may name: a relative ``.toml`` path that stays below the suite's folder
#: (it is copied there on publishing, so ``..`` or an absolute path could not follow it).
_REF = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_./-]+\.toml$")
#: Columns :func:`attach_papers` adds to an aggregate.
COLUMNS = ("paper_top1", "paper_fp_top1", "paper_gap", "vs_paper", "vs_paper_gap", "paper_source")


@dataclass(frozen=True)
class PaperEntry:
    """One published number: ``top1`` of ``method`` at ``bits`` on (``dataset``, ``model``), from a
    paper whose FP model reached ``fp_top1``; ``source`` says where (paper, table)."""

    dataset: str
    model: str
    method: str
    bits: str
    top1: float
    fp_top1: float
    source: str
    note: str = ""

    @property
    def gap(self) -> float:
        """The paper's own drop from its FP model (negative when it lost accuracy)."""
        return self.top1 - self.fp_top1


def check_ref(where: str, ref: Any) -> str:
    """A suite's ``papers`` value, validated: a relative ``.toml`` path without ``..``."""
    if not isinstance(ref, str) or not _REF.match(ref):
        raise QbenchError(f"{where}: papers {ref!r} must be a relative path to a .toml file below the suite's "
                          "folder (e.g. \"papers/cifar10-resnet20.toml\"), without '..'.")
    return ref


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) <= 100:
        raise QbenchError(f"{where}: {key} must be a top-1 in percent (0 < x <= 100), got {value!r}.")
    return float(value)


def load_papers(path: Path) -> list[PaperEntry]:
    """Parse and validate a papers file; every error names the file, the entry and the fix."""
    path = Path(path)
    if not path.is_file():
        raise QbenchError(f"Papers file {str(path)!r} does not exist: fix the suite's `papers` path, or remove it.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise QbenchError(f"Papers file {str(path)!r} is not valid TOML: {exc}.") from None
    unknown = set(raw) - {"dataset", "model", "entry"}
    if unknown:
        raise QbenchError(f"Papers file {str(path)!r}: unknown keys {sorted(unknown)}; allowed: dataset, model, entry.")
    out: list[PaperEntry] = []
    seen: set[tuple[str, str, str, str]] = set()
    for i, e in enumerate(raw.get("entry", [])):
        where = f"papers file {str(path)!r} entry {i + 1}"
        bad = set(e) - _ENTRY_KEYS
        missing = [k for k in _REQUIRED if k not in e]
        if bad or missing:
            raise QbenchError(f"{where}: " + (f"unknown keys {sorted(bad)}" if bad else f"missing {missing}")
                              + f"; an entry holds {', '.join(_REQUIRED)} (and optional dataset, model, note).")
        dataset, model = e.get("dataset", raw.get("dataset")), e.get("model", raw.get("model"))
        if not dataset or not model:
            raise QbenchError(f"{where}: no dataset/model: set them at the top of the file or in the entry.")
        if not str(e["source"]).strip():
            raise QbenchError(f"{where}: source is empty; name the paper and the table the number is printed in.")
        entry = PaperEntry(str(dataset), str(model), str(e["method"]), BitTarget.parse(e["bits"]).label,
                           _number(where, "top1", e["top1"]), _number(where, "fp_top1", e["fp_top1"]),
                           str(e["source"]).strip(), str(e.get("note", "")))
        key = (entry.dataset, entry.model, entry.method, entry.bits)
        if key in seen:
            raise QbenchError(f"{where}: a second entry for {'/'.join(key)}; keep one number per method and bits.")
        seen.add(key)
        out.append(entry)
    return out


def papers_file_of(suite_toml: Path) -> Path | None:
    """The papers file a suite TOML names (resolved beside it), or None when it names none."""
    suite_toml = Path(suite_toml)
    if not suite_toml.is_file():
        return None
    try:
        ref = tomllib.loads(suite_toml.read_text()).get("papers")
    except tomllib.TOMLDecodeError:
        return None  # not ours to judge here: loading the suite names the error
    return suite_toml.parent / check_ref(str(suite_toml), ref) if ref else None


def papers_of_version(d: Path) -> list[PaperEntry] | None:
    """The paper numbers a published version directory carries (through its suite.toml), or None."""
    path = papers_file_of(Path(d) / "suite.toml")
    return load_papers(path) if path is not None else None


def copy_papers(recipe_file: Path, d: Path) -> Path | None:
    """Copy the papers file the suite ``recipe_file`` names into the version directory ``d``, at
    the same relative path, so the published ``suite.toml`` resolves it there too."""
    path = papers_file_of(recipe_file)
    if path is None:
        return None
    load_papers(path)  # never publish a file the leaderboard could not read back
    ref = path.relative_to(Path(recipe_file).parent)
    target = Path(d) / ref
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(path.read_text())
    return target


def attach_papers(agg: pd.DataFrame, papers: list[PaperEntry]) -> pd.DataFrame:
    """``agg`` (from :func:`qbench.report.stats.aggregate`) with the :data:`COLUMNS`: the paper's
    top-1 and FP top-1, its drop ``paper_gap``, ``vs_paper`` = ours minus the paper's top-1 and
    ``vs_paper_gap`` = our drop from our FP minus the paper's drop from its FP (NaN where no paper
    reports the entry)."""
    by_key = {(p.dataset, p.model, p.method, p.bits): p for p in papers}
    out = agg.copy()
    found = [by_key.get((r["dataset"], r["model"], r["method"], r["bits"])) for r in out.to_dict("records")]
    out["paper_top1"] = [p.top1 if p else math.nan for p in found]
    out["paper_fp_top1"] = [p.fp_top1 if p else math.nan for p in found]
    out["paper_gap"] = out["paper_top1"] - out["paper_fp_top1"]
    out["vs_paper"] = out["top1"] - out["paper_top1"]
    out["vs_paper_gap"] = out["gap"] - out["paper_gap"]
    out["paper_source"] = [p.source if p else "" for p in found]
    return out


def _signed(v: float) -> str:
    return "" if math.isnan(v) else f"{v:+.2f}"


#: The extra Markdown header cells, and what they mean (written under the table's legend).
MD_HEADER = " paper | paper Δ FP | ours − paper | Δ FP − paper Δ FP |"
MD_LEGEND = ("*paper* is the top-1 a paper reports for the same method and bits on this dataset and model "
             "(its source and FP top-1 are listed below the tables), *paper Δ FP* its drop from the paper's "
             "own FP model, *ours − paper* our top-1 minus the paper's, and *Δ FP − paper Δ FP* our drop "
             "from our FP minus the paper's drop from its FP: FP baselines differ, so the last compares the "
             "methods, the one before it the numbers a reader expects. Blank where no paper reports the entry.")


def md_cells(r: Any) -> str:
    """The extra cells of one aggregate row (a namedtuple from ``itertuples``)."""
    if math.isnan(r.paper_top1):
        return " | | | |"
    return f" {r.paper_top1:.2f} | {_signed(r.paper_gap)} | {_signed(r.vs_paper)} | {_signed(r.vs_paper_gap)} |"


def md_sources(papers: list[PaperEntry]) -> str:
    """The section listing every paper number with its FP top-1 and its source."""
    lines = ["## Paper numbers\n\n", "Each number as the paper prints it (top-1 %, with the FP top-1 that paper "
             "started from); qbench's recipe follows the papers' setting where the suite file says so, and "
             "names what differs.\n\n"]
    for p in sorted(papers, key=lambda p: (p.dataset, p.model, p.method, p.bits)):
        note = f" ({p.note})" if p.note else ""
        lines.append(f"- {p.dataset} / {p.model} / {p.method} / {p.bits}: {p.top1:.2f} (FP {p.fp_top1:.2f}): "
                     f"{p.source}{note}\n")
    return "".join(lines) + "\n"
