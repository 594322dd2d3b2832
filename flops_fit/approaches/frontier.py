"""The compute-optimal frontier of a fitted law L = E + A/N^alpha + B/D^beta, under the plan's FLOP convention.

Approach 3 and the VPNLS estimator both fit that law; this is where each turns it into
N_opt, D_opt and loss at a compute budget. :class:`FlopsCurve` reads the convention off the runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


_PROPORTIONAL = 0.005  # FLOPs per token within 0.5 % of k N at every size count as k N (rounded token counts)


@dataclass(frozen=True)
class FlopsCurve:
    """FLOPs per token against N, as the plan's convention charged the runs (knots in log-log space).

    Under ``6N`` this is exactly 6N. Other conventions (``6N_non_embedding``, ``attention``...)
    are not functions of N alone, so they are read off the runs and interpolated linearly in
    log-log space. Past the largest run they grow affinely in N (the embeddings and attention
    terms that make them differ from kN grow more slowly than N); below the smallest, with the
    log-log slope of the first stretch.
    """

    log_n: tuple[float, ...]
    log_fpt: tuple[float, ...]

    @classmethod
    def from_results(cls, results: pd.DataFrame) -> FlopsCurve:
        """From ``params`` and ``flops_per_token`` (else ``flops / tokens``; else 6N)."""
        if "flops_per_token" in results.columns:
            per_token = pd.to_numeric(results["flops_per_token"], errors="coerce")
        elif {"flops", "tokens"} <= set(results.columns):
            per_token = (pd.to_numeric(results["flops"], errors="coerce")
                         / pd.to_numeric(results["tokens"], errors="coerce"))
        else:
            return cls((0.0,), (math.log(6.0),))
        params = pd.to_numeric(results["params"], errors="coerce")
        ok = (np.isfinite(per_token) & np.isfinite(params) & (per_token > 0) & (params > 0)).to_numpy(bool)
        if not ok.any():
            return cls((0.0,), (math.log(6.0),))
        frame = pd.DataFrame({"x": np.log(params[ok].to_numpy(float)), "y": np.log(per_token[ok].to_numpy(float))})
        knots = frame.groupby("x")["y"].mean()
        offsets = knots.to_numpy() - knots.index.to_numpy()  # ln(FLOPs per token / N)
        if np.ptp(offsets) < _PROPORTIONAL:  # proportional to N (up to rounding of logged counts): one number
            return cls((0.0,), (float(offsets.mean()),))
        return cls(tuple(knots.index.astype(float)), tuple(knots.astype(float)))

    @property
    def proportional(self) -> bool:
        """Whether FLOPs per token are k N (``k = exp(log_fpt[0])``)."""
        return len(self.log_n) == 1

    def __call__(self, log_n: np.ndarray) -> np.ndarray:
        x = np.asarray(log_n, dtype=float)
        if self.proportional:
            return self.log_fpt[0] + x
        xs, ys = np.array(self.log_n), np.array(self.log_fpt)
        low_slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        n, fpt = np.exp(xs[-2:]), np.exp(ys[-2:])
        per_param = (fpt[1] - fpt[0]) / (n[1] - n[0])  # FLOPs per token per parameter, past the largest run
        above = np.log(np.maximum(fpt[1] + per_param * (np.exp(np.maximum(x, xs[-1])) - n[1]), 1e-300))
        inside = np.interp(x, xs, ys)
        return np.where(x < xs[0], ys[0] + low_slope * (x - xs[0]), np.where(x > xs[-1], above, inside))

    def slope(self, n_low: float, n_high: float) -> float:
        """The exponent c of FLOPs per token ~ N**c between two sizes (1 under 6N)."""
        if self.proportional or n_high <= n_low:
            return 1.0
        x = np.log([n_low, n_high])
        y = self(x)
        return float((y[1] - y[0]) / (x[1] - x[0]))


def parametric_frontier(law: pd.DataFrame, compute: np.ndarray | list[float],
                        flops_per_param_token: float = 6.0, *, flops: FlopsCurve | None = None) -> pd.DataFrame:
    """N_opt, D_opt and loss along the compute frontier of a fitted law.

    With C = k N D (``flops_per_param_token`` = k, the default 6N) the optimum is Hoffmann et
    al. 2022's Eq. 4, N_opt = G (C/k)^a. With ``flops`` (a :class:`FlopsCurve` read from the
    runs, for conventions that are not proportional to N) it is found numerically: the N that
    minimises L(N, C / flops_per_token(N)), on a fine grid of ln N refined by a parabola.
    """
    row = law.iloc[0]
    c = np.asarray(compute, dtype=float)
    if flops is None or flops.proportional:
        k = flops_per_param_token if flops is None else math.exp(flops.log_fpt[0])
        n = row["G"] * (c / k) ** row["a"]
        d = c / (k * n)
    else:
        n = np.array([_argmin_n(row, flops, value) for value in c.ravel()]).reshape(c.shape)
        d = c / np.exp(flops(np.log(n)))
    loss = row["E"] + row["A"] / n ** row["alpha"] + row["B"] / d ** row["beta"]
    return pd.DataFrame({"budget": c, "params_opt": n, "tokens_opt": d, "loss_opt": loss})


def _argmin_n(row: pd.Series, flops: FlopsCurve, compute: float) -> float:
    """The N minimising the law's loss at ``compute`` FLOPs under ``flops``."""
    return math.exp(optimal_log_params(row["A"], row["alpha"], row["B"], row["beta"], compute, flops))


def optimal_log_params(A: float, alpha: float, B: float, beta: float, compute: float, flops: FlopsCurve) -> float:
    """ln N minimising A/N^alpha + B/D^beta on the budget ``compute``, where D = C / flops_per_token(N).

    Proportional conventions (k N) have the closed form of Hoffmann et al. 2022's Eq. 4; others are
    searched on a fine grid of ln N around the 6N answer, refined by a parabola through the best three.
    """
    k = math.exp(flops.log_fpt[0]) if flops.proportional else 6.0
    centre = (math.log(alpha * A / (beta * B)) + beta * math.log(compute / k)) / (alpha + beta)
    if flops.proportional:
        return centre
    x = np.linspace(centre - 6.0, centre + 6.0, 4001)
    log_d = math.log(compute) - flops(x)
    loss = A * np.exp(-alpha * x) + B * np.exp(-beta * log_d)
    i = int(np.clip(np.argmin(loss), 1, len(x) - 2))
    c2, c1, _ = np.polyfit(x[i - 1:i + 2] - x[i], loss[i - 1:i + 2], 2)
    return float(x[i] - c1 / (2 * c2)) if c2 > 0 else float(x[i])
