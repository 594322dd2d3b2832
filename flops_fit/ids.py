"""Run ids: a stable hash of what a run is (budget, size, model settings, training settings)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

REPR_KEY = "__repr__"  # how record_json marks an object it could keep only by name


def stable_repr(obj: object) -> str:
    """A repr that names the setting the same way in every session, or a clear error when it cannot.

    Objects whose repr is only their type and address (lambdas, plain instances) would
    all look alike once the address is dropped, so two different settings would share
    run ids; they are refused instead.
    """
    text = repr(obj)
    qualname = getattr(obj, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname or re.fullmatch(r"<.+ object at 0x[0-9a-fA-F]+>", text):
        raise ValueError(f"The 'model_kwargs' parameter of plan_sweep must hold values that name themselves: "
                         f"{text} does not, so runs could not be told apart. Pass a module-level function, "
                         "a string or a dataclass instead.")
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def to_json(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys); what JSON cannot hold is written as its :func:`stable_repr`."""
    return json.dumps(value, sort_keys=True, default=stable_repr)


def record_json(value: Any) -> str:
    """``value`` as JSON to be read back: what JSON cannot hold becomes ``{"__repr__": <its stable repr>}``,
    so a reader can tell a recorded object from a string."""
    return json.dumps(value, sort_keys=True, default=lambda obj: {REPR_KEY: stable_repr(obj)})


def unreadable(settings: dict[str, Any]) -> list[str]:
    """The keys of JSON-read ``settings`` whose values were objects, recorded only by their repr."""
    return sorted(k for k, v in settings.items() if isinstance(v, dict) and set(v) == {REPR_KEY})



def make_run_id(**content: Any) -> str:
    """A stable id from a run's content (budget, size, training settings), never its position."""
    return hashlib.sha1(to_json(content).encode()).hexdigest()[:12]


# a run id names files (runs/<id>.json): letters, digits, '_', '-' and '.', not starting with '.', so no path
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def bad_run_ids(run_ids: Any) -> list[str]:
    """The run ids that could not safely name a file inside a sweep directory (``../x``, ``a/b``, ``.hidden``)."""
    return [str(rid) for rid in run_ids if not RUN_ID_PATTERN.fullmatch(str(rid))]
