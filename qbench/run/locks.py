"""Locks between processes on one workspace, so two runs never train the same job twice.

``fcntl.flock`` locks belong to the open file: the kernel releases them when the holder exits,
however it exits (kill -9 included). A lock file left behind by a dead run is therefore free to
take, with no stale-lock detection to get wrong. Needs a filesystem with flock (local disks,
NFSv4); the Ray executor does not use the workspace's locks on its workers.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class FileLock:
    """An exclusive lock on ``path``; reentrant use is not supported.

    ``with lock:`` waits for it; :meth:`try_acquire` takes it only when free.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; True when taken."""
        return self._acquire(blocking=False)

    def acquire(self) -> None:
        self._acquire(blocking=True)

    def _acquire(self, blocking: bool) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a human looking at the file
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
