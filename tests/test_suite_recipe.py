"""Suite recipes: a model's own FP recipe, and older published versions kept runnable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qbench.errors import QbenchError
from qbench.plugin.catalog import Catalog
from qbench.run.jobs import expand, select_methods, suite_methods
from qbench.run.plan import resolve_suite
from qbench.run.suite import load_suite, parse_suite

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SHIPPED = Path(__file__).parents[1] / "qbench" / "suites"


def _quick(**model_fp: object) -> dict:
    raw = tomllib.loads((SHIPPED / "quick.toml").read_text())
    for m in raw["models"]:
        m.pop("fp", None)
        if m.get("alias") == "vit-micro" and model_fp:
            m["fp"] = dict(model_fp)
    return raw


def _fp_keys(suite, catalog: Catalog) -> dict[tuple[str, int], str]:
    methods = select_methods(["fp32"], suite_methods(suite, catalog))
    return {(j.model.label, j.seed): j.fp_key for j in expand(suite, catalog, methods)}


def test_a_models_fp_override_changes_only_that_models_recipe_and_keys(catalog: Catalog) -> None:
    plain = parse_suite(_quick())
    vit_adamw = parse_suite(_quick(optimizer="adamw", lr=0.003, weight_decay=0.05))
    vit = next(m for m in vit_adamw.models if m.label == "vit-micro")
    cnn = next(m for m in vit_adamw.models if m.label == "resnet20")
    assert vit_adamw.fp_for(vit).optimizer == "adamw" and vit_adamw.fp_for(vit).lr == 0.003
    assert vit_adamw.fp_for(vit).epochs == plain.fp.epochs  # fields not overridden come from the suite
    assert vit_adamw.fp_for(cnn) == plain.fp
    before, after = _fp_keys(plain, catalog), _fp_keys(vit_adamw, catalog)
    for (model, seed), key in before.items():
        # a checkpoint is shared only when it was trained the same way
        assert (after[(model, seed)] == key) == (model == "resnet20")
    # a suite without overrides hashes as it did before the option existed
    assert "fp" not in json.dumps([m for m in plain.recipe()["models"]])


@pytest.mark.parametrize("override, message", [({"optimiser": "adamw"}, "Did you mean 'optimizer'"),
                                                ({"optimizer": "lamb"}, "optimizer 'lamb' is not supported"),
                                                ({"lr": -1.0}, "lr > 0")])
def test_a_bad_model_fp_override_names_the_model_and_the_fix(override: dict, message: str) -> None:
    with pytest.raises(QbenchError, match="vit-micro") as err:
        parse_suite(_quick(**override))
    assert message in str(err.value)


def test_the_shipped_quick_vit_trains_its_reference_as_vits_are_trained() -> None:
    quick = load_suite(str(SHIPPED / "quick.toml"), {})
    vit = next(m for m in quick.models if m.label == "vit-micro")
    assert quick.fp_for(vit).optimizer == "adamw" and quick.qat.optimizer == "sgd"


def test_an_archived_recipe_edited_after_publishing_is_refused(catalog: Catalog, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "quick" / "v2"
    d.mkdir(parents=True)
    archived = Path(__file__).parents[1] / "leaderboards" / "quick" / "v2"
    (d / "meta.json").write_text((archived / "meta.json").read_text())
    (d / "suite.toml").write_text((archived / "suite.toml").read_text())
    monkeypatch.setenv("QBENCH_LEADERBOARDS", str(tmp_path))
    assert resolve_suite("quick@v2", catalog).version == 2
    (d / "suite.toml").write_text((archived / "suite.toml").read_text().replace("lr = 0.05", "lr = 0.06"))
    with pytest.raises(QbenchError, match="edited after publishing"):
        resolve_suite("quick@v2", catalog)
    with pytest.raises(QbenchError, match="NAME@vN"):
        resolve_suite("quick@latest", catalog)
