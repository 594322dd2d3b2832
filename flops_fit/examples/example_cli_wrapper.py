"""Wrap the command-line stages in your own script: plan, train, analyze and draw in one go.

    python -m flops_fit.examples.example_cli_wrapper --budgets 1e18 3e18 1e19 --layers 6

The stages' Hydra configs are composed with overrides (the same ``key=value``
strings the ``ff-*`` commands take) and handed to the functions behind the commands,
so a script gets exactly what ``ff-plan``, ``ff-train``, ``ff-analyze`` and
``ff-visualize`` would do, without shelling out.
"""

from __future__ import annotations

import argparse

from hydra import compose, initialize_config_module

from flops_fit.cli import run_analyze, run_plan, run_train, run_visualize


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1e18, 3e18, 1e19])
    parser.add_argument("--layers", type=int, default=6, help="n_layer of the GPT")
    parser.add_argument("--sweep-dir", default="flops_fit_sweep")
    parser.add_argument("--mode", default="mock", choices=["mock", "local"])
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for the plan, e.g. planning.size_span=30")
    args = parser.parse_args(argv)

    budgets = "[" + ",".join(f"{b:g}" for b in args.budgets) + "]"
    common = [f"sweep_dir={args.sweep_dir}"]
    with initialize_config_module(config_module="flops_fit.conf", version_base="1.3"):
        run_plan(compose("plan", overrides=[*common, f"compute.budgets={budgets}", f"model.n_layer={args.layers}",
                                            *args.overrides]))
        run_train(compose("train", overrides=[*common, f"mode={args.mode}"]))
        run_analyze(compose("analyze", overrides=common))
        run_visualize(compose("visualize", overrides=[*common, "png=auto"]))


if __name__ == "__main__":
    main()
