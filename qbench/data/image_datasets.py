"""CIFAR-10/100, ImageNet and image folders through torchvision's and timm's loaders.

These need a data directory (no hub downloads on machines without internet):

* ``cifar10`` / ``cifar100``: torchvision's CIFAR classes on ``DIR/cifar-10-batches-py`` (or
  ``cifar-100-python``), the official pickled batches. ``verify_checksums=False`` accepts files
  whose MD5 differs from the official release (e.g. small files made for tests).
* ``imagenet`` / ``image-folder``: timm's folder dataset on ``DIR/train`` and ``DIR/val`` (one
  sub-folder per class), with timm's standard transforms.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from qbench.data.bundle import DataBundle
from qbench.data.fingerprint import files_fingerprint
from qbench.errors import QbenchError

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _need_dir(name: str, data_dir: Path | None) -> Path:
    if not data_dir:
        raise QbenchError(f"Dataset {name!r} needs a data directory: pass --data-dir DIR "
                          f"(or set the dataset option data_dir in the suite).")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise QbenchError(f"Dataset {name!r}: data directory {str(path)!r} does not exist. "
                          "Fix the path or create it with the dataset inside.")
    return path


class _PresenceChecked:
    """torchvision's CIFAR loader with presence checks in place of the official MD5s (mixed into
    the classes :func:`_cifar_class` makes)."""

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder  # type: ignore[attr-defined]
        return all((folder / f).exists() for f, _ in self.train_list + self.test_list)  # type: ignore[attr-defined]

    def _load_meta(self) -> None:
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:  # type: ignore[attr-defined]
            data = pickle.load(f, encoding="latin1")
        self.classes = data[self.meta["key"]]  # type: ignore[attr-defined]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


_UNVERIFIED: dict[int, Any] = {}


def _cifar_class(num_classes: int, verify: bool) -> Any:
    """torchvision's class, or its presence-checked variant. The variant is a module attribute
    (``UnverifiedCIFAR10``, made on first use through the module's ``__getattr__``) so that the
    dataset pickles: DataLoader workers started with spawn or forkserver receive it pickled."""
    from torchvision.datasets import CIFAR10, CIFAR100

    base = CIFAR10 if num_classes == 10 else CIFAR100
    if verify:
        return base
    if num_classes not in _UNVERIFIED:
        name = f"UnverifiedCIFAR{num_classes}"
        _UNVERIFIED[num_classes] = type(name, (_PresenceChecked, base), {"__module__": __name__, "__qualname__": name})
    return _UNVERIFIED[num_classes]


def __getattr__(name: str) -> Any:
    if name in ("UnverifiedCIFAR10", "UnverifiedCIFAR100"):
        return _cifar_class(int(name[len("UnverifiedCIFAR"):]), verify=False)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_cifar(num_classes: int, data_dir: Path | None = None, verify_checksums: bool = True,
               augment: bool = True) -> DataBundle:
    import torchvision.transforms as T

    name = f"cifar{num_classes}"
    root = _need_dir(name, data_dir)
    cls = _cifar_class(num_classes, verify_checksums)
    norm = [T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
    train_tf = T.Compose(([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []) + norm)
    try:
        train = cls(str(root), train=True, transform=train_tf)
        test = cls(str(root), train=False, transform=T.Compose(norm))
    except RuntimeError as exc:
        raise QbenchError(f"Dataset {name!r} in {str(root)!r}: {exc}. Put the official python-format batches "
                          f"in {cls.base_folder}/ under the data directory.") from None
    return DataBundle(name=name, train=train, test=test, num_classes=num_classes, in_chans=3,
                      image_size=(32, 32), fingerprint=files_fingerprint(root / cls.base_folder), source=str(root))


def load_image_folder(data_dir: Path | None = None, name: str = "image-folder", img_size: int = 224,
                      train_split: str = "train", val_split: str = "val", augment: bool = True) -> DataBundle:
    """Any ``DIR/{train,val}/<class>/<image>`` tree, read by timm's folder dataset."""
    from timm.data import create_dataset, create_transform

    root = _need_dir(name, data_dir)
    for split in (train_split, val_split):
        if not (root / split).is_dir():
            raise QbenchError(f"Dataset {name!r}: expected a {split!r} folder in {str(root)!r} "
                              "with one sub-folder per class.")
    train = create_dataset("", root=str(root), split=train_split, is_training=True)
    test = create_dataset("", root=str(root), split=val_split, is_training=False)
    train.transform = create_transform(img_size, is_training=augment)
    test.transform = create_transform(img_size, is_training=False)
    classes = train.reader.class_to_idx if hasattr(train, "reader") else {}
    num_classes = len(classes) or 1000
    return DataBundle(name=name, train=train, test=test, num_classes=num_classes, in_chans=3,
                      image_size=(img_size, img_size), fingerprint=files_fingerprint(root), source=str(root))
