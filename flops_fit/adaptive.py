"""AdaptiveExecution: an adaptive sweep's loop of batches, each chosen from the runs before it.

Run a batch, refit, ask :class:`~flops_fit.planning.adaptive.AdaptiveDesign` for the next one, until it says
stop (the target precision, the compute cap, or nothing left to add). It is a
:class:`~flops_fit.execution.SweepExecution` whose plan grows, so a :class:`~flops_fit.SweepHandle`, the
progress bars and the monitor follow it as they follow any sweep. With a sweep directory each batch is added to
``plan.csv`` before it runs; a restarted sweep takes up the runs it had proposed, reruns nothing that finished,
and goes on from there.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ._checks import warn
from .errors import FitWarning
from .execution import SweepExecution
from .planning.adaptive import AdaptiveDesign, Proposal

logger = logging.getLogger(__name__)


class AdaptiveExecution(SweepExecution):
    """A sweep whose next runs are proposed by ``design`` after each batch (see the module docstring)."""

    def __init__(self, plan: pd.DataFrame, *args: Any, design: AdaptiveDesign, **kwargs: Any) -> None:
        super().__init__(plan, *args, **kwargs)
        self.design = design
        self.history: list[Proposal] = []  # one per batch: the precision reached, the FLOPs spent, what came next

    @property
    def stop_reason(self) -> str:
        return self.history[-1].stop if self.history else ""

    def run(self) -> None:
        while True:
            super().run()
            if self.stop_event.is_set() or len(self.todo) and self._unfinished():
                return  # stopped, or runs did not come back: a rerun takes up from here
            proposal = self.design.propose(self.results())
            self.history.append(proposal)
            self.emit(proposal.event(self.design.spec.target_precision))
            if proposal.stop:
                logger.info("adaptive sweep stopped: %s (precision %.3g, %.3g FLOPs)", proposal.stop,
                            proposal.precision, proposal.spent)
                for note in proposal.notes:
                    warn(f"adaptive sweep: {note}.", FitWarning)
                return
            self.extend(proposal.plan)

    def _unfinished(self) -> bool:
        return any(row["run_id"] not in self.outcomes for row in self.todo)
