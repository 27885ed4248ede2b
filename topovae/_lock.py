"""One writer at a time: an exclusive lock on a dataset file being written or a run folder being
trained, with the holder named when a second writer is refused.

    lock = WriterLock(".data.h5.lock", "data.h5", DatasetError)
    lock.acquire()        # or: DatasetError "data.h5 is being written by process 4711 on host"
    ...
    lock.release()

The lock is the operating system's (`filelock`: flock on POSIX), so the kernel releases it when
its holder dies, however it dies: a lock left by a killed process is simply taken over. The
holder writes its PID and host into a sidecar file, read only to name it in the refusal. The
(empty) lock file itself stays: unlinking it on release races with a process that has just
opened it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout


class WriterLock:
    def __init__(self, path: str | os.PathLike, what: str, error: type[Exception]) -> None:
        self.path = Path(path)
        self.owner = self.path.with_name(self.path.name + ".owner")
        self.what, self.error = what, error
        self._lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> WriterLock:
        try:
            self._lock.acquire()
        except Timeout:
            try:
                holder = self.owner.read_text().strip() or "another process"
            except OSError:
                holder = "another process"
            raise self.error(
                f"{self.what} is being written by {holder}; wait for it to finish or stop it"
            ) from None
        self.owner.write_text(f"process {os.getpid()} on {socket.gethostname()}\n")
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self.owner.unlink(missing_ok=True)
            self._lock.release(force=True)
