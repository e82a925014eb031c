"""One writer at a time: an exclusive lock beside a store, ``STORE.zarr.lock``.

The lock is a small JSON file (or object) naming its holder: host, PID, the process's start time
and command. It is created atomically (``O_EXCL`` locally, fsspec's exclusive ``"xb"`` mode on
other file systems). A lock left by a dead process *on this host* is taken over; any other lock
is refused with one line naming the holder. Locks are released when the writer closes the store,
and at interpreter exit.

Limits: a lock on another host is never taken over (its process cannot be checked from here):
remove the lock file by hand once that writer is known to be gone. On object stores the lock is an
object; where the file system cannot create one exclusively (no conditional writes), the lock is
written and read back, which narrows but does not close the window for two writers starting within
the same instant.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

TAKEOVER_TIMEOUT_S = 30.0  # a takeover mutex older than this was left by a crashed takeover


class StoreLockedError(OSError):
    """The store is being written by another process; ``holder`` describes it (host, pid, since, command)."""

    holder = ""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _process_start(pid)
    return start is None or now is None or now == start


def _describe(holder: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("time", 0)))
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since {since}" + (
        f", `{holder['command']}`" if holder.get("command") else ""
    )


_HELD: set[WriterLock] = set()


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD):
        lock.release()


class WriterLock:
    """The exclusive writer lock of the store at ``path`` (a local path or an fsspec URL).

    Use as a context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, path, storage_options: dict | None = None):
        self.store = str(path).rstrip("/")
        self.path = self.store + ".lock"
        self.storage_options = storage_options or {}
        self.token = uuid.uuid4().hex
        self.held = False
        self._fs = None
        if "://" in self.store and not self.store.startswith("file://"):
            import fsspec

            self._fs, self._root = fsspec.core.url_to_fs(self.path, **self.storage_options)
        elif self.store.startswith("file://"):
            self.path = self.path[len("file://") :]

    # -- the holder record ------------------------------------------------------
    def _record(self) -> bytes:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "start": _process_start(os.getpid()),
                "time": time.time(),
                "command": " ".join(sys.argv)[:300],
                "token": self.token,
            }
        ).encode()

    def _read(self) -> dict | None:
        try:
            if self._fs is not None:
                data = self._fs.cat_file(self._root)
            else:
                data = Path(self.path).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"host": "?", "pid": "?", "unreadable": True}

    def _create(self) -> bool:
        """Create the lock exclusively; False when it already exists."""
        record = self._record()
        if self._fs is not None:
            self._fs.makedirs(self._fs._parent(self._root), exist_ok=True)
            try:
                with self._fs.open(self._root, "xb") as f:
                    f.write(record)
            except FileExistsError:
                return False
            except (ValueError, NotImplementedError, TypeError):  # no exclusive create: write, then read back
                if self._fs.exists(self._root):
                    return False
                self._fs.pipe_file(self._root, record)
            return (self._read() or {}).get("token") == self.token
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(record)
        return True

    def _stale(self, holder: dict) -> bool:
        if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return False
        return not _alive(holder["pid"], holder.get("start"))

    def _take_over(self, holder: dict) -> bool:
        """Replace a dead holder's lock by ours, under a short-lived mutex so two takers cannot both win."""
        if self._fs is not None:  # object stores: overwrite and read back
            self._fs.pipe_file(self._root, self._record())
            return (self._read() or {}).get("token") == self.token
        mutex = self.path + ".takeover"
        try:
            fd = os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(mutex) > TAKEOVER_TIMEOUT_S:
                    os.unlink(mutex)
            except OSError:
                pass
            return False
        try:
            os.close(fd)
            if self._read() != holder:  # someone else took it meanwhile
                return False
            tmp = f"{self.path}.{self.token}"
            Path(tmp).write_bytes(self._record())
            os.replace(tmp, self.path)  # atomic: the lock never disappears
            return True
        finally:
            os.unlink(mutex)

    # -- public -------------------------------------------------------------------
    def acquire(self) -> WriterLock:
        if self.held:
            return self
        for _ in range(20):
            if self._create():
                break
            holder = self._read()
            if holder is None:  # released between our attempts
                continue
            if not self._stale(holder):
                error = StoreLockedError(
                    f"{self.store}: being written by another writer ({_describe(holder)}); wait for it to finish, "
                    f"or delete {self.path} if that process is gone"
                )
                error.holder = _describe(holder)
                raise error
            if self._take_over(holder):
                break
            time.sleep(0.05)
        else:
            raise StoreLockedError(f"{self.store}: could not take the writer lock {self.path} (contended)")
        self.held = True
        _HELD.add(self)
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _HELD.discard(self)
        holder = self._read()
        if holder is None or holder.get("token") != self.token:
            return  # not ours any more (removed by hand): leave it
        try:
            if self._fs is not None:
                self._fs.rm_file(self._root)
            else:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __hash__(self) -> int:
        return id(self)
