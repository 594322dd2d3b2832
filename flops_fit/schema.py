"""The vocabulary every stage shares: statuses, modes and the column names of each frame.

Column names are public API (see DESIGN.md); they are written here once.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of a run. Each member equals its string (``Status.COMPLETED == "completed"``)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DIVERGED = "diverged"

    def __str__(self) -> str:
        return self.value


# a run with one of these has a record and will not run again (unless failures are retried)
FINISHED: tuple[str, ...] = (Status.COMPLETED.value, Status.DIVERGED.value, Status.FAILED.value)

# "mock" simulates a planted law; "local" trains on this machine (or on an executor's workers)
MODES: tuple[str, ...] = ("mock", "local")

PLAN_COLUMNS = [
    "run_id", "budget", "size", "params", "flops_per_token", "tokens", "flops", "tokens_per_param", "status",
    # what building and training a run from its row alone needs: the knob's name, the fixed model settings
    # (JSON) and the tokens one sample counts for (empty when the plan was made without the data)
    "size_param", "model_kwargs", "tokens_per_sample",
    # 0, or 1.. for the extra runs of a size that PlanSpec.repeats asked for (each its own seed)
    "repeat",
    # why the run is in the plan: "grid" (a fixed plan), "listed" (size_values), or an adaptive sweep's
    # "new budget", "bracket left", "bracket right", "refine"
    "reason",
]
# what run_sweep needs of a plan someone else made
PLAN_REQUIRED = ["run_id", "budget", "size", "params", "flops_per_token", "tokens"]
# what a run adds to its plan row; "identity" is how it was made (mode, seed and law, or training settings), as JSON
OUTCOME_COLUMNS = ["loss", "tokens_trained", "epochs", "steps", "wall_time", "tokens_per_second", "flops_per_second",
                   "utilisation", "device", "error", "identity"]
CURVE_COLUMNS = ["run_id", "step", "tokens", "flops", "loss", "lr"]

# Approach 2 (and Approach 1, read at FLOP counts): one row per budget
OPTIMA_COLUMNS = [
    "budget", "params_opt", "tokens_opt", "loss_opt", "n_points", "params_min", "params_max",
    "curvature", "scatter", "has_minimum", "inside", "usable", "flag",
]
# power laws across budgets: one row per quantity
LAW_QUANTITIES = {"params": "params_opt", "tokens": "tokens_opt", "loss": "loss_opt"}
LAW_COLUMNS = [
    "quantity", "coefficient", "exponent", "exponent_se", "exponent_lo", "exponent_hi", "r2", "n_budgets", "dof",
    "budget_min", "budget_max", "floor", "covariance", "confidence",
]
# what every approach estimates, fitted (resample 0) and bootstrapped (resample 1..n), in one long frame:
# quantity "a" / "b" (exponents of N_opt and D_opt; target is NaN), "params" / "tokens" (N_opt and D_opt at target)
ESTIMATE_COLUMNS = ["approach", "resample", "quantity", "target", "value"]
# Result.backtest: a fit without the largest budget(s), against what they measured
BACKTEST_COLUMNS = ["budget", "quantity", "predicted", "low", "high", "measured", "relative_error", "held"]
