"""The quickstart, end to end in mock mode: plan, simulate, fit, predict, plot.

Run with ``python -m flops_fit.examples.example_quickstart [--out DIR]``. It trains
nothing (mock mode simulates Chinchilla's published law), so it takes seconds on a CPU.
"""

from __future__ import annotations

import argparse
import time

from flops_fit import PlantedLaw, find_optimal
from flops_fit.examples import GPT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="flops_fit_output", help="directory for the HTML figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    law = PlantedLaw()  # Chinchilla's fit, 0.5 % noise: the answer we should recover
    result = find_optimal(
        model_cls=GPT,
        model_size_param="d_model",
        dataset="unused in mock mode",
        loss_fn="unused in mock mode",
        compute_budgets=[1e17, 1e18, 1e19, 1e20, 1e21],
        mode="mock",
        seed=args.seed,
        law=law,
        model_kwargs={"n_layer": 4},
    )
    elapsed = time.perf_counter() - start
    print(f"Simulated {len(result.results)} runs over 5 budgets and fitted them in {elapsed:.2f} s.\n")
    print(result.chinchilla_table())
    prediction = result.predict(1e23)
    print(f"\nAt 1e23 FLOPs train N = {prediction['optimal_params']:.3g} parameters "
          f"(95% interval {prediction['optimal_params_low']:.3g}–{prediction['optimal_params_high']:.3g}) "
          f"on D = {prediction['optimal_tokens']:.3g} tokens.")
    print(f"Fitted exponent a = {result.exponent('params'):.4f}; the planted law has a = {law.a:.4f}.")
    result.plot(html_dir=args.out)
    print(f"Figures written to {args.out}/isoflops.html and {args.out}/scaling_laws.html")


if __name__ == "__main__":
    main()
