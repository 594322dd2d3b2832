"""The exceptions and warnings flops_fit raises, in one place so every layer can name them."""

from __future__ import annotations


class FitWarning(UserWarning):
    """A fit ran, but part of the data cannot support it (named in the message)."""


class CannotFitError(ValueError):
    """An approach cannot run on this data: too few runs, curves or budgets (the message says which)."""


class TooFewBudgetsError(CannotFitError):
    """Fewer than two budgets have a located minimum, so no power law can be fitted."""


class SizeSearchError(ValueError):
    """The factory cannot provide sizes for a budget (or for any budget)."""


class ModelContractError(TypeError):
    """The factory built a model without a usable ``num_params()``."""


class RunAbandoned(Exception):
    """A run stopped part-way on request (``SweepHandle.stop()``); it is not recorded and will run again."""


class SweepIncomplete(RuntimeError):
    """The executor stopped taking runs before the sweep ended; ``results`` holds what finished (and the
    store keeps it), so a new executor resumes the rest."""

    def __init__(self, message: str, results: object = None) -> None:
        super().__init__(message)
        self.results = results
