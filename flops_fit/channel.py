"""Live events from executor workers: each worker process sends its runs' events to the sweep over a socket.

A sweep on an executor opens an :class:`EventChannel`: a ``multiprocessing.connection``
listener on 127.0.0.1 with a random key. Every run sent to a worker carries the channel's
:class:`Ticket`; in the worker, the run's ``run_start``, ``step`` and ``eval`` events go back
over one connection per worker process (the training loop already limits ``step`` events
to its log points). The sweep's thread drains them between completions, so callbacks and
the monitor see runs on a process pool, a Dask ``LocalCluster`` or :func:`~flops_fit.gpu_pool`
move as they train, as they do for runs trained here. A worker on another host (a cluster
whose workers cannot reach this one's loopback) sends nothing, and its runs report only
when they end. A worker that cannot connect loses its live events, never its run.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

logger = logging.getLogger(__name__)
HOST = socket.gethostname()


@dataclass(frozen=True)
class Ticket:
    """What a worker needs to send events to the sweep: its host, the listener's address and key."""

    host: str
    address: Any
    key: bytes


class EventChannel:
    """The sweep's end: accepts worker connections and collects their events for :meth:`drain`.

    Examples
    --------
    >>> channel = EventChannel()
    >>> send = sender(channel.ticket)
    >>> send({"type": "step", "run_id": "a", "step": 1})
    >>> import time; time.sleep(0.2)
    >>> [event["step"] for event in channel.drain()]
    [1]
    >>> channel.close()
    """

    def __init__(self) -> None:
        key = os.urandom(16)
        self._listener = Listener(("127.0.0.1", 0), authkey=key)
        self.ticket = Ticket(HOST, self._listener.address, key)
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="flops_fit-events", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection = self._listener.accept()
            except Exception:  # closed, or a stranger without the key
                if self._closed.is_set():
                    return
                continue
            threading.Thread(target=self._read, args=(connection,), name="flops_fit-events-in", daemon=True).start()

    def _read(self, connection: Connection) -> None:
        with connection:
            while True:
                try:
                    self._events.put(connection.recv())
                except (EOFError, OSError):  # the worker process ended
                    return

    def drain(self) -> list[dict[str, Any]]:
        """Every event that arrived since the last call, in arrival order."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass


_senders: dict[Any, tuple[Connection, threading.Lock]] = {}  # one connection per worker process and channel


def sender(ticket: Ticket | None) -> Callable[[dict[str, Any]], None]:
    """In a worker: a function that sends an event to the sweep (it does nothing when the sweep cannot be
    reached). Threads of one worker (Dask's) share the connection, taking turns."""
    if ticket is None or ticket.host != HOST:
        return _drop
    if ticket.address not in _senders:
        try:
            _senders[ticket.address] = (Client(ticket.address, authkey=ticket.key), threading.Lock())
        except Exception as exc:  # the sweep has ended, or is out of reach
            logger.info("no live events to %s: %s", ticket.address, exc)
            return _drop
    connection, lock = _senders[ticket.address]

    def send(event: dict[str, Any]) -> None:
        try:
            with lock:
                connection.send(event)
        except Exception:  # the sweep went away: the run goes on without an audience
            _senders.pop(ticket.address, None)

    return send


def _drop(event: dict[str, Any]) -> None:
    return None
