"""The user's own data without a plugin: an image folder, or a factory in their code.

* ``folder``: ``DIR/train/<class>/<image>`` and ``DIR/val/`` (or ``DIR/test/``) with the same class
  folders. Images keep their size (the first training image's; others are resized to it); grey
  images stay one channel. A folder that fits in :data:`IN_MEMORY_BYTES` as float32 is decoded
  once into memory (batched by index, as digits is: fast on a CPU, no augmentation); a larger one
  is read through torchvision's ``ImageFolder`` and a DataLoader. Normalised with the training
  split's per-channel mean and std. Its fingerprint hashes every file's path and size.
* ``python``: ``factory = "pkg.module:fn"`` returning ``(train, val, test)`` torch datasets of
  ``(image tensor, int label)``; ``test`` may be None (then ``val`` is the test split). The number of
  classes is the dataset's ``classes`` when it has them, else the largest label + 1.

:func:`carve` splits a validation set off the training split (``qbench advise`` screens on it, so
the test split is looked at once, by the finalists).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from qbench.data.bundle import DataBundle, first_batch
from qbench.data.fingerprint import files_fingerprint
from qbench.errors import QbenchError

#: folders whose decoded float32 tensors fit in this many bytes are held in memory
IN_MEMORY_BYTES = 512 * 2**20
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _images(folder: Path) -> list[tuple[Path, str]]:
    return [(p, c.name) for c in sorted(folder.iterdir()) if c.is_dir()
            for p in sorted(c.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def _test_split(root: Path) -> str:
    for split in ("val", "test"):
        if (root / split).is_dir():
            return split
    raise QbenchError(f"--data {str(root)!r}: no val/ or test/ folder beside train/. Fix: put held-out images in "
                      f"{root / 'val'}/<class>/ (the same class folders as train/).")


def load_user_folder(data_dir: Path | None = None, name: str = "folder", img_size: int = 0) -> DataBundle:
    """``DIR/train`` and ``DIR/val`` (or ``DIR/test``), one sub-folder per class."""
    from PIL import Image

    if data_dir is None or not Path(data_dir).is_dir():
        raise QbenchError(f"--data {str(data_dir)!r} is not a directory. Fix: give a folder holding train/ and val/.")
    root = Path(data_dir).expanduser().resolve()
    if not (root / "train").is_dir():
        raise QbenchError(f"--data {str(root)!r}: no train/ folder. Fix: put images in {root / 'train'}/<class>/.")
    test_split = _test_split(root)
    train_files, test_files = _images(root / "train"), _images(root / test_split)
    classes = sorted({c for _, c in train_files})
    if not train_files:
        raise QbenchError(f"--data {str(root)!r}: train/ holds no images in class folders ({', '.join(IMAGE_SUFFIXES)}).")
    extra = sorted({c for _, c in test_files} - set(classes))
    if extra:
        raise QbenchError(f"--data {str(root)!r}: {test_split}/ has classes train/ lacks: {', '.join(extra)}. Fix: "
                          "use the same class folders in both.")
    with Image.open(train_files[0][0]) as first:
        size = (img_size, img_size) if img_size else (first.height, first.width)
    grey = all(Image.open(p).mode in ("L", "1", "I;16") for p, _ in train_files[:64])
    chans = 1 if grey else 3
    fingerprint = files_fingerprint(root)
    index = {c: i for i, c in enumerate(classes)}
    if (len(train_files) + len(test_files)) * chans * size[0] * size[1] * 4 <= IN_MEMORY_BYTES:
        train, test, source = *_decode(train_files, test_files, index, size, grey), f"{root} (decoded in memory)"
    else:
        train, test, source = *_image_folders(root, test_split, size, grey), str(root)
    return DataBundle(name=name, train=train, test=test, num_classes=len(classes), in_chans=chans,
                      image_size=size, fingerprint=fingerprint, source=source)


def _decode(train_files: list[tuple[Path, str]], test_files: list[tuple[Path, str]], index: dict[str, int],
            size: tuple[int, int], grey: bool) -> tuple[TensorDataset, TensorDataset]:
    import numpy as np
    from PIL import Image

    def load(files: list[tuple[Path, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        arrays = []
        for p, _ in files:
            with Image.open(p) as img:
                img = img.convert("L" if grey else "RGB")
                if (img.height, img.width) != size:
                    img = img.resize((size[1], size[0]), Image.BILINEAR)
                arrays.append(np.asarray(img, dtype=np.float32) / 255.0)
        x = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(0, *size)
        x = x.unsqueeze(1) if grey else x.permute(0, 3, 1, 2)
        return x.contiguous(), torch.tensor([index[c] for _, c in files], dtype=torch.int64)

    (xtr, ytr), (xte, yte) = load(train_files), load(test_files)
    mean = xtr.mean(dim=(0, 2, 3), keepdim=True)
    std = xtr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return TensorDataset((xtr - mean) / std, ytr), TensorDataset((xte - mean) / std, yte)


def _image_folders(root: Path, test_split: str, size: tuple[int, int], grey: bool) -> tuple[Dataset, Dataset]:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    norm = T.Normalize((0.5,), (0.25,)) if grey else T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    tf = T.Compose([T.Grayscale() if grey else T.Lambda(_rgb), T.Resize(size), T.ToTensor(), norm])
    return ImageFolder(str(root / "train"), transform=tf), ImageFolder(str(root / test_split), transform=tf)


def _rgb(img: Any) -> Any:
    return img.convert("RGB")


def _num_classes(ds: Any) -> int:
    if hasattr(ds, "classes"):
        return len(ds.classes)
    if isinstance(ds, TensorDataset):
        return int(ds.tensors[1].max()) + 1
    return max(int(ds[i][1]) for i in range(len(ds))) + 1


def load_user_factory(data_dir: Path | None = None, factory: str = "", name: str = "python") -> DataBundle:
    """The datasets ``factory`` (``pkg.module:fn``) returns; its source is hashed into the keys by the
    planner (:mod:`qbench.run.user`), the data itself is not read for a fingerprint."""
    from qbench.models.user import load_ref, source_sha

    got = load_ref(factory, "--data")()
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise QbenchError(f"--data {factory!r} returned a {type(got).__name__}; it must return (train, val, test) "
                          "torch datasets (val or test may be None).")
    train, val, test = got
    test = test if test is not None else val
    for split, ds in (("train", train), ("test (or val)", test)):
        if ds is None or not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__") or len(ds) == 0:
            raise QbenchError(f"--data {factory!r}: its {split} split is {type(ds).__name__}, not a non-empty torch "
                              "dataset of (image tensor, label).")
    x = first_batch(train, 1)[0]
    if x.dim() != 4:
        raise QbenchError(f"--data {factory!r}: a sample is a tensor of shape {tuple(x.shape[1:])}; qbench needs "
                          "images (channels, height, width).")
    return DataBundle(name=name, train=train, test=test, num_classes=_num_classes(train), in_chans=x.shape[1],
                      image_size=(x.shape[2], x.shape[3]), fingerprint="source:" + source_sha(factory, "--data"),
                      source=factory)


def carve(bundle: DataBundle, fraction: float, seed: int) -> DataBundle:
    """The training split cut in two, per class and seeded: a ``fraction`` of each class becomes the
    test split (the validation set advise screens on), the rest the training split."""
    train = bundle.train
    labels = train.tensors[1] if isinstance(train, TensorDataset) else \
        torch.as_tensor(getattr(train, "targets", [int(train[i][1]) for i in range(len(train))]))  # type: ignore
    gen = torch.Generator().manual_seed(seed)
    held: list[int] = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        held += idx[:max(1, round(fraction * len(idx)))].tolist() if len(idx) > 1 else []
    held_set = set(held)
    kept = [i for i in range(len(labels)) if i not in held_set]
    held = sorted(held)

    def part(idx: list[int]) -> Dataset:
        if isinstance(train, TensorDataset):
            return TensorDataset(*(t[idx] for t in train.tensors))
        return Subset(train, idx)
    return DataBundle(name=bundle.name, train=part(kept), test=part(held), num_classes=bundle.num_classes,
                      in_chans=bundle.in_chans, image_size=bundle.image_size,
                      fingerprint=f"{bundle.fingerprint}/val{fraction:g}s{seed}",
                      source=f"{bundle.source}; validation: {fraction:.0%} of each training class (seed {seed})")
