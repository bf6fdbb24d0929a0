"""Small datasets written in the real on-disk formats, for tests of the file-dataset path.

The leaderboards use in-memory data; users bring files (CIFAR's pickled batches, ImageNet-style
folders of JPEGs), which go through a DataLoader with worker processes and random augmentation.
These generators write tiny, deterministic datasets in exactly those formats, so a test runs the
path users take, file reading and decoding included. The images are class-dependent patterns (a
colour and a stripe orientation per class, with seeded noise): a model learns something from them,
and no leaderboard number ever comes from them.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def pattern_images(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 images: class ``c`` is stripes at an angle of ``c`` x 18
    degrees in a colour of its own, plus seeded noise, so classes differ and samples vary."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    for i, c in enumerate(labels):
        angle = np.pi * int(c) / 10
        phase = rng.uniform(0, 2 * np.pi)
        stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / 6 + phase)
        colour = np.array([(int(c) * 37) % 256, (int(c) * 91 + 60) % 256, (int(c) * 53 + 120) % 256]) / 255
        img = stripes[..., None] * colour[None, None, :] * 200 + rng.normal(0, 20, (size, size, 3)) + 30
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write_cifar10(root: Path | str, per_batch: int = 40, test: int = 100, seed: int = 0) -> Path:
    """CIFAR-10 in the official python format under ``root/cifar-10-batches-py``: ``data_batch_1``
    to ``_5`` and ``test_batch`` (pickled dicts with ``data``: uint8 ``(n, 3072)``, the R, G and B
    planes of each 32x32 image row-major; ``labels``; ``batch_label``; ``filenames``) and
    ``batches.meta`` (``label_names``, ``num_cases_per_batch``, ``num_vis``), pickled with
    protocol 2 as the release is. Returns ``root`` (what ``--data-dir`` takes)."""
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = [(f"data_batch_{i}", f"training batch {i} of 5", per_batch) for i in range(1, 6)]
    for b, (name, label, n) in enumerate([*batches, ("test_batch", "testing batch 1 of 1", test)]):
        labels = (np.arange(n) * 7 + b) % 10  # every class in every batch, in a mixed order
        images = pattern_images(labels, 32, seed * 1000 + b)
        data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # HWC -> the CHW planes of the release
        entry = {"batch_label": label, "labels": [int(v) for v in labels], "data": np.ascontiguousarray(data),
                 "filenames": [f"{CIFAR10_CLASSES[int(c)]}_s_{b:02d}{i:04d}.png" for i, c in enumerate(labels)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": per_batch, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072},
                    f, protocol=2)
    return root


def write_image_folder(root: Path | str, classes: tuple[str, ...] = ("cat", "dog", "eel", "fox"),
                       train_per_class: int = 24, val_per_class: int = 8, size: int = 40, seed: int = 0) -> Path:
    """An ImageNet-style tree ``root/{train,val}/<class>/<n>.JPEG`` of real JPEG files (PIL,
    quality 90). Returns ``root``."""
    from PIL import Image

    root = Path(root)
    for s, (split, n) in enumerate((("train", train_per_class), ("val", val_per_class))):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(pattern_images(np.full(n, c), size, seed * 1000 + s * 100 + c)):
                Image.fromarray(img).save(folder / f"{name}_{i:04d}.JPEG", format="JPEG", quality=90)
    return root


def file_suite(dataset: str, name: str = "files", methods: tuple[str, ...] = ("fp32", "lsq"),
               options: str = "", batch_size: int = 50, width: int = 4) -> str:
    """The TOML of a one-epoch suite on a file dataset (``cifar10``, ``image-folder``...): resnet20
    at ``width`` channels, one seed, W4A4. ``options`` is the dataset's inline options table body,
    e.g. ``verify_checksums = false``. Seconds long on the generated data."""
    q = ", ".join(f'"{m}"' for m in methods)
    opts = f"options = {{ {options} }}\n" if options else ""
    return (f'name = "{name}"\nversion = 1\nseeds = [0]\nbits = ["W4A4"]\nfirst_last = "fp"\nmethods = [{q}]\n'
            f'threads = 1\n\n[[datasets]]\nname = "{dataset}"\n{opts}\n'
            f'[[models]]\nname = "resnet20"\nkwargs = {{ width = {width} }}\n\n'
            f"[fp]\nepochs = 1\nbatch_size = {batch_size}\nlr = 0.05\n\n"
            f"[qat]\nepochs = 1\nbatch_size = {batch_size}\nlr = 0.01\n")
