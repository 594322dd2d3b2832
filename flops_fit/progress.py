"""Progress for terminals and notebooks: a tqdm bar per run, fed by the trainer's events."""

from __future__ import annotations

from typing import Any


class TqdmProgress:
    """A callback for :func:`run_sweep`: one bar over runs, one over the steps of the current run.

    ``tqdm.auto`` draws widgets in Jupyter and text bars in terminals.
    """

    def __init__(self, total_runs: int) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.runs = tqdm(total=total_runs, desc="sweep", unit="run")
        self.bar: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "run_start":
            self.bar = self._tqdm(total=event["steps"], desc=f"run {event['run_id']}", unit="step", leave=False)
        elif kind == "step" and self.bar is not None:
            self.bar.update(event["step"] - self.bar.n)
            self.bar.set_postfix(loss=f"{event['loss']:.3f}")
        elif kind == "run_end":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self.runs.update(1)
            self.runs.set_postfix(last_loss=f"{event['loss']:.3f}", status=event["status"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.runs.close()
