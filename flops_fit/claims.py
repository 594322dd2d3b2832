"""Claims: which worker of a shared sweep directory runs which run, so that each runs once.

A claim is the file ``claims/<run_id>.claim`` (host, pid, a random token), created with
``O_EXCL``, so of workers racing for a run exactly one creates it, on a local disk and on
NFS alike. The holder refreshes its claims' modification times every few seconds (a
heartbeat) and removes each when the run's record is written. A claim is *stale*, and
is taken over, when its process is gone (same host) or when it was not refreshed for
:attr:`Claims.stale_s` seconds (another host, hung or cut off), as optuna's RDB storage
fails the trials of workers whose heartbeat stopped. Taking over renames the stale file
aside first, which is atomic, so two workers cannot both take it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
HOST = socket.gethostname()


class Claims:
    """The claims of one sweep directory, and the ones this worker holds.

    Examples
    --------
    >>> import tempfile
    >>> mine, theirs = Claims(tempfile.mkdtemp()), None
    >>> mine.take("run1"), mine.take("run1"), mine.held()
    (True, False, {'run1'})
    >>> mine.release("run1"); mine.held()
    set()
    """

    stale_s: float = 120.0  # a claim not refreshed for this long is taken over (a hung or unreachable worker)

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._held: dict[str, str] = {}  # run_id -> the token of the claim this worker holds

    def take(self, run_id: str) -> bool:
        """Take ``run_id`` for this worker: True when this worker may run it, False when a live one has it.

        The claim file is created exclusively (``O_EXCL``), so of workers racing for a run one wins; a
        stale claim (its process gone, or not refreshed for :attr:`stale_s`) is taken over."""
        path = self.folder / f"{run_id}.claim"
        token = uuid.uuid4().hex
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._take_over(path):
                    return False
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"host": HOST, "pid": os.getpid(), "token": token, "time": time.time()}, handle)
            self._held[run_id] = token
            return True
        return False

    def _take_over(self, path: Path) -> bool:
        """Remove ``path`` if its claim is stale (True: try again); False while its worker lives."""
        try:
            seen, age = _info(path), time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile
        if not self._stale(seen, age):
            return False
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.stale")
        try:
            os.rename(path, aside)  # atomic: of two workers taking over, one moves it
        except FileNotFoundError:
            return True
        taken = _info(aside)
        if taken.get("token") != seen.get("token"):  # a fresh claim slipped in between: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        logger.warning("run %s: claim by %s pid %s is stale; taking it over", path.stem, seen.get("host"),
                       seen.get("pid"))
        return True

    def _stale(self, seen: Mapping[str, Any], age: float) -> bool:
        pid = seen.get("pid")
        if seen.get("host") == HOST and isinstance(pid, int) and seen.get("token") not in self._held.values():
            if not alive(pid):
                return True
        return age > self.stale_s

    def release(self, run_id: str) -> None:
        """Give up this worker's claim on ``run_id`` (after its record is written, or when it was not run)."""
        token = self._held.pop(run_id, None)
        path = self.folder / f"{run_id}.claim"
        if token is not None and _info(path).get("token") == token:
            path.unlink(missing_ok=True)

    def release_all(self) -> None:
        for run_id in list(self._held):
            self.release(run_id)

    def heartbeat(self) -> None:
        """Refresh every claim this worker holds, so other workers see they are alive."""
        for run_id in list(self._held):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.folder / f"{run_id}.claim")

    def held(self) -> set[str]:
        """The run ids some worker (this one or another) holds a claim on now."""
        return {path.stem for path in self.folder.glob("*.claim")}



def _info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return {}  # gone, or still being written
    return info if isinstance(info, dict) else {}


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    except OSError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
