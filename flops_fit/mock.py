"""Mock mode: a simulator with a known scaling law, so the pipeline runs in seconds with no GPU.

A run of N parameters trained on D tokens ends at

    L(N, D) = E + A / N**alpha + B / D**beta

(Hoffmann et al. 2022, Eq. 2; defaults are their published fit, Sec. 3.3) times
``1 + noise * eps`` with eps standard normal. Its loss curve follows L(N, t) for the
tokens t seen so far. Nothing is trained and no weights are built.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .schema import CURVE_COLUMNS


@dataclass(frozen=True)
class PlantedLaw:
    """The law mock mode simulates; defaults are Chinchilla's published Approach 3 fit.

    Parameters
    ----------
    E, A, B, alpha, beta : float
        Irreducible loss, the model-size term A / N**alpha and the data term B / D**beta.
    noise : float, default 0.005
        Relative standard deviation of the multiplicative noise on each run's loss (0.5 %).

    Examples
    --------
    >>> law = PlantedLaw()
    >>> round(law.a, 4)  # N_opt grows as C**a
    0.4516
    >>> round(law.loss(70e9, 1.4e12), 3)  # Chinchilla itself
    1.937
    """

    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28
    noise: float = 0.005

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"PlantedLaw.{name} must be a finite number. Got {value!r} instead.")
            if value < 0 or (value == 0 and name in ("alpha", "beta")):
                raise ValueError(f"PlantedLaw.{name} must be positive. Got {value!r} instead.")

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C**a: beta / (alpha + beta) (Hoffmann et al. 2022, Eq. 4)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt: alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    def loss(self, params: float | np.ndarray, tokens: float | np.ndarray) -> float | np.ndarray:
        """Noise-free loss of N = ``params`` trained on D = ``tokens``."""
        value = self.E + self.A / np.power(params, self.alpha) + self.B / np.power(tokens, self.beta)
        return float(value) if np.ndim(value) == 0 else value

    def optimal_params(self, compute: float | np.ndarray, flops_per_param_token: float = 6.0) -> float | np.ndarray:
        """N minimising L on C = k*N*D (Hoffmann et al. 2022, Eq. 4): G * (C/k)**a."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        return g * np.power(np.asarray(compute, dtype=float) / flops_per_param_token, self.a)

    def optimal_tokens(self, compute: float | np.ndarray, flops_per_param_token: float = 6.0) -> float | np.ndarray:
        return np.asarray(compute, dtype=float) / (flops_per_param_token * self.optimal_params(compute, flops_per_param_token))


def check_law(law: object, func: str) -> PlantedLaw:
    """The law to simulate: ``None`` means Chinchilla's; anything else must be a PlantedLaw."""
    if law is None:
        return PlantedLaw()
    if not isinstance(law, PlantedLaw):
        raise ValueError(f"The 'law' parameter of {func} must be a PlantedLaw. Got {law!r} instead. "
                         "Build one with flops_fit.PlantedLaw(E=..., A=..., B=..., alpha=..., beta=..., noise=...).")
    return law


def check_pace(pace: object, mode: str, func: str) -> float:
    """Seconds each mock run takes (``pace``): None or 0 for none, else a non-negative number; refused with
    ``mode="local"``, whose runs take the time they take."""
    if pace is None:
        return 0.0
    if isinstance(pace, bool) or not isinstance(pace, (int, float, np.number)) or not 0 <= float(pace) < math.inf:
        raise ValueError(f"The 'pace' parameter of {func} must be a non-negative number of seconds per mock run "
                         f"(or None). Got {pace!r} instead.")
    if pace and mode != "mock":
        raise ValueError(f"The 'pace' parameter of {func} must be None or 0 with mode={mode!r}. Got {pace!r} "
                         "instead. pace only slows simulated runs down so a person can watch them arrive.")
    return float(pace)


def run_rng(seed: int, run_id: str) -> np.random.Generator:
    """A generator that depends on the seed and the run's content only, not on the order runs execute in."""
    return np.random.default_rng([int(seed), zlib.crc32(run_id.encode())])


def simulate_run(
    run_id: str, params: float, tokens: int, flops_per_token: float, law: PlantedLaw, seed: int,
    curve_points: int = 40,
) -> tuple[float, pd.DataFrame]:
    """Final loss and loss curve of one simulated run."""
    rng = run_rng(seed, run_id)
    # log-spaced logging steps from 1/1000 of the run to its end, as a trainer logs more densely early on
    seen = np.unique(np.geomspace(max(tokens / 1000, 1), tokens, curve_points).round().astype(np.int64))
    seen[-1] = tokens
    clean = law.loss(params, seen.astype(float))
    noisy = clean * (1.0 + law.noise * rng.standard_normal(seen.size))
    curve = pd.DataFrame({
        "run_id": run_id,
        "step": np.arange(1, seen.size + 1),
        "tokens": seen,
        "flops": seen * flops_per_token,
        "loss": noisy,
        "lr": np.nan,  # mock mode has no optimiser
    }, columns=CURVE_COLUMNS)
    return float(noisy[-1]), curve
