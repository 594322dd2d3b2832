"""The events a sweep emits, and the one function that hands them to callbacks.

A sweep begins with ``sweep_start`` (``store``: the sweep directory or None, ``runs``, ``identity``:
how its runs are made, ``model``: the plan's model settings, ``spec``: the plan's
:class:`~flops_fit.PlanSpec` as a dict or None, ``finished``: the run_ids a resumed sweep takes from
its directory) and ends with ``sweep_end`` (``stopped``, ``counts`` of each status), also when it is
stopped or fails. Every run emits, in order: ``run_start`` (``run_id, steps, tokens, device, row``:
its plan row; from an executor's worker also ``worker``: its ``host`` and ``pid``) and ``run_end``
(``run_id``, the outcome: ``status, loss, error, ...``, with ``record``: the plan row, the outcome
and ``flops``, and ``curve``: its curves frame), both from the runner; in between, runs trained here
emit ``step`` (``run_id, step, steps, tokens, loss, lr``) and ``eval`` (``run_id, loss``). Workers
of an executor on this host send theirs back (:mod:`flops_fit.channel`); from workers on other hosts
only ``run_end`` comes. A run another worker sharing the sweep directory finished ends with a
``run_end`` that has ``elsewhere=True`` and no ``record``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

Event = dict[str, Any]
Callback = Callable[[Event], None]

logger = logging.getLogger(__name__)


def emitter(callbacks: Sequence[Callback]) -> Callback:
    """One function that passes an event to every callback in ``callbacks`` (read at each call, so callbacks
    added later are reached), logging rather than raising a callback's error."""

    def emit(event: Event) -> None:
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # a broken display must not cost a trained run
                logger.exception("callback %r failed on a %s event", callback, event["type"])

    return emit
