"""Datasets shipped with the host: digits (default), Fashion-MNIST, CIFAR, ImageNet, folders."""
from __future__ import annotations

from functools import partial
from typing import Callable

from qbench import hookimpl


@hookimpl
def qbench_register_datasets(register: Callable[..., None]) -> None:
    # the loaders import torch: here, when datasets are asked for, not when the plugin loads
    from qbench.data.digits import load_digits
    from qbench.data.fashion_mnist import load_fashion_mnist
    from qbench.data.image_datasets import load_cifar, load_image_folder
    from qbench.data.user import load_user_factory, load_user_folder

    register("digits", load_digits, description="scikit-learn digits, 8x8 grey, 10 classes (embedded default)")
    register("fashion-mnist", load_fashion_mnist,
             description="Fashion-MNIST 28x28 grey (Debian dataset-fashion-mnist, a data dir, or download)")
    register("cifar10", partial(load_cifar, 10), description="CIFAR-10 via torchvision (needs --data-dir)")
    register("cifar100", partial(load_cifar, 100), description="CIFAR-100 via torchvision (needs --data-dir)")
    register("imagenet", partial(load_image_folder, name="imagenet"),
             description="ImageNet train/val folders via timm (needs --data-dir)")
    register("image-folder", load_image_folder, description="Any train/val class-folder tree via timm")
    register("folder", load_user_folder, description="--data DIR: your train/ and val/ (or test/) class folders, "
                                                     "at their own image size")
    register("python", load_user_factory, description="--data pkg.module:fn: your (train, val, test) datasets")
