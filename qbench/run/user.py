"""Plan the user's own model and data: ``--model pkg.module:factory`` and ``--data DIR|pkg.module:fn``.

No plugin and no suite file: the model and data entries replace a suite's (the quick suite's
recipe by default), and the suite is renamed ``<suite>-custom`` so its rows never mix with a
published suite's. What enters the job keys:

* a model: its reference and its source hash (:func:`qbench.models.user.source_sha`: the module
  file's content and the factory's qualified name);
* a folder: its fingerprint (every file's path and size, :func:`qbench.data.fingerprint.files_fingerprint`),
  not its path, so a moved copy reuses rows and another folder never does;
* a dataset factory: its reference and its source hash (the data it returns is not read for a
  fingerprint: it may be large or generated).

Before anything trains, :func:`check_user_model` builds the model and runs one forward on a
sample: the output width must be the data's number of classes, and every layer must be one qbench
quantizes.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qbench.data.fingerprint import CACHE_DIR as FINGERPRINT_CACHE
from qbench.data.fingerprint import files_fingerprint
from qbench.errors import QbenchError
from qbench.models.user import is_ref, source_sha
from qbench.run.suite import DatasetEntry, ModelEntry, Suite

if TYPE_CHECKING:
    from qbench.data.bundle import DataBundle
    from qbench.plugin.catalog import Catalog

#: dataset options that carve a validation split off the training split (qbench.data.user.carve)
HOLDOUT, HOLDOUT_SEED = "holdout", "holdout_seed"


def user_model_entry(spec: str) -> ModelEntry:
    return ModelEntry(spec, source=source_sha(spec, "--model"))


def user_data_entry(spec: str) -> DatasetEntry:
    """A folder (``DIR`` with train/ and val/ or test/) or a factory (``pkg.module:fn``)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        root = path.resolve()
        return DatasetEntry("folder", {}, location=str(root), source=files_fingerprint(root))
    if is_ref(spec):
        return DatasetEntry("python", {"factory": spec}, source=source_sha(spec, "--data"))
    raise QbenchError(f"--data {spec!r} is neither a directory nor a reference to your code. Fix: give a folder "
                      "holding train/ and val/ (or test/), or pkg.module:fn returning (train, val, test) datasets.")


def custom_suite(suite: Suite, models: list[str] | None, data: str | None) -> Suite:
    """``suite`` with the user's models (references to their code, or timm names) and/or data in
    place of its own, renamed ``<name>-custom``."""
    changes: dict[str, Any] = {}
    if models:
        by_name = {**{m.name: m for m in suite.models}, **{m.label: m for m in suite.models}}
        changes["models"] = tuple(user_model_entry(m) if is_ref(m) else by_name.get(m, ModelEntry(m)) for m in models)
    if data:
        changes["datasets"] = (user_data_entry(data),)
    name = suite.name if suite.name.endswith("-custom") else f"{suite.name}-custom"
    return replace(suite, name=name, **changes)


def with_holdout(suite: Suite, fraction: float, seed: int) -> Suite:
    """The suite's datasets with a validation split carved off their training split (in the keys)."""
    if not 0 < fraction < 1:
        raise QbenchError(f"--holdout must be a fraction between 0 and 1, got {fraction}.")
    return replace(suite, datasets=tuple(replace(d, options={**d.options, HOLDOUT: fraction, HOLDOUT_SEED: seed})
                                         for d in suite.datasets))


def load_data(catalog: "Catalog", entry: DatasetEntry, data_dir: Path | None, cache: Path) -> "DataBundle":
    """A dataset entry's data: from its registered factory, in the user's folder when it has one,
    with its validation split carved when its options ask for one."""
    from qbench.data.user import carve

    factory = catalog.datasets.get(entry.name).factory
    options = dict(entry.options)
    fraction, seed = options.pop(HOLDOUT, None), options.pop(HOLDOUT_SEED, 0)
    where = options.pop("data_dir", None) or entry.location or data_dir
    token = FINGERPRINT_CACHE.set(cache)  # a large tree is walked once per run
    try:
        bundle = factory(Path(where) if where else None, **options)
    finally:
        FINGERPRINT_CACHE.reset(token)
    return carve(bundle, float(fraction), int(seed)) if fraction else bundle


def check_user_model(entry: ModelEntry, bundle: "DataBundle") -> None:
    """Build the model for the data and run one forward: the output width must be the number of
    classes, and every layer with weights must be one qbench quantizes."""
    import torch

    from qbench.data.bundle import first_batch
    from qbench.models import create_model
    from qbench.models.user import check_quantizable
    from qbench.train.surgery import find_layers

    model = create_model(entry.name, bundle.num_classes, bundle.in_chans, **entry.kwargs).eval()
    check_quantizable(model, entry.name)
    x = first_batch(bundle.train, 2)[0]
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise QbenchError(f"--model {entry.name!r} failed on a batch of the data, shape {tuple(x.shape)}: "
                          f"{type(exc).__name__}: {exc}".splitlines()[0] + ". Fix: make its input layer take "
                          f"{bundle.in_chans} channel(s) of {bundle.image_size[0]}x{bundle.image_size[1]}.") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != bundle.num_classes:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise QbenchError(f"--model {entry.name!r} outputs {got}, but the data has {bundle.num_classes} classes. Fix: "
                          f"make its last layer output {bundle.num_classes} logits per image (or take a "
                          "num_classes argument: qbench passes it).")
    find_layers(model, x)  # no Conv2d or Linear at all: its own error


def check_custom(catalog: "Catalog", suite: Suite, cache: Path, data_dir: Path | None = None) -> None:
    """Each user model of ``suite`` checked on each of its datasets (built, one forward)."""
    users = [m for m in suite.models if m.source]
    for m in users:
        if m.fp_checkpoint and m.fp_checkpoint_format != "safetensors":
            raise QbenchError(f"--fp-checkpoint {m.fp_checkpoint!r} for your model {m.name!r}: only a .safetensors "
                              "state_dict can be loaded into it. Fix: safetensors.torch.save_file(model.state_dict(), "
                              "'fp.safetensors').")
    if not users and not any(d.source for d in suite.datasets):
        return
    for d in suite.datasets:
        bundle = load_data(catalog, d, data_dir, cache)
        for m in users:
            check_user_model(m, bundle)
