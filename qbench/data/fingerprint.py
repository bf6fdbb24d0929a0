"""The fingerprint of a dataset on disk, computed once rather than in every process.

A file dataset's fingerprint (in every row) hashes each file's relative path and size: for
ImageNet that is a stat of 1.3 million files, and every pool worker, every fresh process of the
subprocess executor and every Ray worker loaded the data and walked them all again. Now:

* a tree of at most :data:`SMALL_TREE` files (CIFAR's eight) is simply hashed;
* a larger one is keyed by its directory listing (each directory's path, mtime and entry count:
  listing directories is cheap next to a stat per file), and its fingerprint is kept in this
  process and, when the runner gives one (:data:`CACHE_DIR`, the workspace's ``cache/``), on disk
  for the other processes of the run and for later runs. Adding, removing or renaming a file
  changes its directory's mtime and so the key; rewriting a file in place under the same name
  is not seen in a large tree (an ImageNet copy is not edited that way).
"""
from __future__ import annotations

import hashlib
import json
import os
from contextvars import ContextVar
from pathlib import Path

from qbench.atomic import atomic_write_text

#: trees with at most this many files are hashed directly (a stat each costs little)
SMALL_TREE = 20_000
#: where fingerprints of large trees are kept between processes (set by the runner around loading)
CACHE_DIR: ContextVar[Path | None] = ContextVar("qbench_fingerprint_cache_dir", default=None)
_MEMO: dict[tuple[str, str], str] = {}


def _walk(root: Path) -> tuple[list[tuple[str, list[str]]], str]:
    """Every directory (relative path, sorted file names) in the order of their full paths (the
    order fingerprints have always been hashed in), and the hash of the listing's key."""
    found, key = [], hashlib.sha256()
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        found.append((dirpath, os.path.relpath(dirpath, root), sorted(files)))
        key.update(f"{found[-1][1]}\0{os.stat(dirpath).st_mtime_ns}\0{len(files)}\n".encode())
    found.sort()
    return [(rel, files) for _, rel, files in found], key.hexdigest()


def _hash(root: Path, dirs: list[tuple[str, list[str]]]) -> str:
    h = hashlib.sha256()
    for rel, files in dirs:
        for f in files:
            p = root / rel / f
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def files_fingerprint(root: Path | str) -> str:
    """Hash of relative paths and sizes under ``root``: cheap, and changes when the files change."""
    root = Path(root).resolve()
    dirs, key = _walk(root)
    if sum(len(files) for _, files in dirs) <= SMALL_TREE:
        return _hash(root, dirs)
    memo = (str(root), key)
    if memo in _MEMO:
        return _MEMO[memo]
    cache_dir = CACHE_DIR.get()
    cache = cache_dir / f"fingerprint-{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.json" if cache_dir \
        else None
    if cache is not None:
        try:
            saved = json.loads(cache.read_text())
            if saved.get("root") == str(root) and saved.get("listing") == key:
                _MEMO[memo] = saved["fingerprint"]
                return _MEMO[memo]
        except (OSError, ValueError, AttributeError):  # missing or damaged: compute it again
            pass
    _MEMO[memo] = _hash(root, dirs)
    if cache is not None:
        try:
            atomic_write_text(cache, json.dumps({"root": str(root), "listing": key, "fingerprint": _MEMO[memo]}))
        except OSError:  # a read-only workspace costs the next process a walk, nothing more
            pass
    return _MEMO[memo]
