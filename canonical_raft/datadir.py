"""A node's data directory: checked and created, then owned by one node at a
time through an exclusive flock on a lock file inside it."""

from __future__ import annotations

import errno
import fcntl
import os
import weakref

LOCK_NAME = "canonical_raft.lock"   # libraft's uv backend ignores names it does not know
REMOVED_NAME = "canonical_raft.removed"  # the node was removed: start() refuses (core/removed.pxi)
BORN_NAME = "canonical_raft.born"   # the leader's commit index when this empty log joined


class DataDirInUseError(OSError):
    """Another node, in this process or another, holds this data dir."""


def prepare(data_dir: str | os.PathLike[str]) -> str:
    """The absolute path of ``data_dir``, created (0700) if missing, made
    0700 if it is ours and open to others (libraft writes its files 0600)."""
    path = os.fspath(data_dir)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError("data_dir must not be empty")
    path = os.path.abspath(path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not os.path.isdir(path):
        raise NotADirectoryError(f"data_dir {path!r} is not a directory")
    st = os.stat(path)
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, 0o700)     # the log and snapshots are the cluster's data
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"data_dir {path!r} is not writable")
    return path


class DataDirLock:
    """The exclusive hold on one data dir. flock is per open file, so a
    second holder in the same process is refused as well as one in another;
    the kernel lets go if the process dies."""

    def __init__(self, data_dir: str) -> None:
        self._path = os.path.join(data_dir, LOCK_NAME)
        self._fd = -1
        _locks.add(self)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> None:
        """Take the lock (nothing else in the dir is touched first); a no-op
        if held. DataDirInUseError naming the dir and the holder's pid."""
        if self._fd >= 0:
            return
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            if holder == os.getpid():
                who = "another node in this process"
            raise DataDirInUseError(
                errno.EBUSY, f"data_dir {os.path.dirname(self._path)!r} is in use by {who}: "
                "one node per data dir (close that node first)") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)       # drops the flock; the pid stays, harmless

    __del__ = release          # a node dropped without close() lets go too


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# A forked child shares each lock with its parent (one open file); it
# closes its copy so that the parent's release() really lets go.
_locks: weakref.WeakSet[DataDirLock] = weakref.WeakSet()


def _forget_in_child() -> None:
    for lock in list(_locks):
        lock.release()


os.register_at_fork(after_in_child=_forget_in_child)
