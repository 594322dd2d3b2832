"""Command-line stages on Hydra: ff-plan, ff-train, ff-analyze, ff-visualize.

Each stage reads and writes the sweep directory (``sweep_dir=``), so they hand off
through it and can run on different machines. Configs live in ``flops_fit/conf``;
override any value on the command line (``ff-plan compute.max_flops=1e22``) and see
them all with ``--help``. The ``run_*`` functions take a composed config, so scripts
can call the stages without the command line (``flops_fit.examples.example_cli_wrapper``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import flops_fit as ff
from flops_fit.api import training_facts
from flops_fit.live import readable_backtest
from flops_fit.planning.adaptive import REASONS
from flops_fit.spec import PlanSpec
from flops_fit.store import SweepStore

PLAN_CONFIG = "plan_config.yaml"  # what ff-plan leaves for ff-train: which factory to import, and its knob
# PlanSpec's fields as types OmegaConf checks; model_kwargs come from the `model:` node instead
_CONFIG_TYPES = {"size_values": Optional[list[int]], "size_range": Optional[list[int]], "flop_convention": str,
                 "max_compute": Optional[float], "target_compute": Optional[float]}


def planning_schema() -> type:
    """``planning:`` as a structured config made from :class:`~flops_fit.PlanSpec`'s fields and defaults:
    Hydra then checks names and types of ``planning.*`` overrides, and the defaults live in one place."""
    defaults = PlanSpec()
    spec_fields = [(f.name, _CONFIG_TYPES.get(f.name, f.type if isinstance(f.type, type) else type(
        getattr(defaults, f.name))), field(default=getattr(defaults, f.name)))
                   for f in fields(PlanSpec) if f.name != "model_kwargs"]
    return make_dataclass("PlanningConfig", spec_fields)


ConfigStore.instance().store(group="planning", name="spec", node=planning_schema())


def _factory(model: DictConfig) -> tuple[Any, dict[str, Any]]:
    settings = OmegaConf.to_container(model, resolve=True)
    target = settings.pop("_target_")
    return hydra.utils.get_object(target), settings


def _budgets(compute: DictConfig) -> list[float]:
    if compute.budgets:
        return [float(b) for b in compute.budgets]
    lo, hi, n = float(compute.min_flops), float(compute.max_flops), int(compute.num_budgets)
    if not 0 < lo <= hi or n < 1:
        raise ValueError(f"compute.min_flops ({lo:g}) and compute.max_flops ({hi:g}) must be positive with min <= max,"
                         f" and compute.num_budgets ({n}) at least 1.")
    return [float(f"{b:.3g}") for b in np.logspace(math.log10(lo), math.log10(hi), n)]


def run_plan(cfg: DictConfig) -> ff.SweepPlan:
    factory, settings = _factory(cfg.model)
    planning = OmegaConf.to_container(cfg.planning, resolve=True)
    spec = PlanSpec.from_options(None, {**planning, "model_kwargs": settings}, "ff-plan")
    plan = ff.plan_sweep(factory, cfg.size_param, _budgets(cfg.compute), spec=spec)
    store = SweepStore(cfg.sweep_dir, writer=True)
    store.add_plan(plan, spec)
    OmegaConf.save(OmegaConf.create({"model": cfg.model, "size_param": cfg.size_param}),
                   Path(cfg.sweep_dir) / PLAN_CONFIG)
    sweep = ff.SweepPlan(plan, model_cls=factory, model_size_param=cfg.size_param, spec=spec)
    print(repr(sweep))
    print(f"\nPlan written to {cfg.sweep_dir}/plan.csv; next: ff-train sweep_dir={cfg.sweep_dir}")
    return sweep


def run_train(cfg: DictConfig) -> Any:
    sweep_dir = Path(cfg.sweep_dir)
    if not (sweep_dir / PLAN_CONFIG).exists():
        raise FileNotFoundError(f"{sweep_dir} holds no plan: run ff-plan sweep_dir={sweep_dir} first.")
    planned = OmegaConf.load(sweep_dir / PLAN_CONFIG)
    factory, settings = _factory(planned.model)
    store = SweepStore(sweep_dir)
    spec, plan = store.spec(), store.plan()
    loop = {k: cfg[k] for k in ("strategy", "target_precision", "max_compute", "parallel") if cfg[k] is not None}
    dataset = held = loss = config = None
    if cfg.mode != "mock":
        dataset = hydra.utils.instantiate(cfg.dataset)
        held = hydra.utils.instantiate(cfg.eval_dataset) if cfg.eval_dataset is not None else None
        loss = hydra.utils.get_object(cfg.loss._target_)
        config = ff.TrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))
    if loop:
        spec = PlanSpec.from_options(spec, {**loop, "model_kwargs": settings}, "ff-train")
        if spec.strategy == "adaptive" and not ("reason" in plan.columns and plan["reason"].isin(REASONS).all()):
            plan = _adaptive_start(store, plan, spec, factory, planned.size_param, cfg.mode, dataset, config)
    common = dict(store=str(sweep_dir), retry_failed=bool(cfg.retry_failed), model_size_param=planned.size_param,
                  model_kwargs=settings, spec=spec)
    if cfg.mode == "mock":
        results = ff.run_sweep(plan, factory, mode="mock", seed=int(cfg.seed),
                               law=ff.PlantedLaw(**OmegaConf.to_container(cfg.law)), **common)
    else:
        results = ff.run_sweep(plan, factory, dataset, loss, mode=cfg.mode, train_config=config, eval_dataset=held,
                               **common)
    counts = results["status"].value_counts().to_dict()
    print(f"{len(results)} runs in {sweep_dir}: {counts}")
    print(f"next: ff-analyze sweep_dir={sweep_dir}")
    return results


def _adaptive_start(store: SweepStore, plan: Any, spec: PlanSpec, factory: Any, size_param: str, mode: str,
                    dataset: Any, config: Any) -> Any:
    """``ff-train strategy=adaptive`` on a directory ff-plan planned with a fixed design: the adaptive start
    design at the same budgets instead, as long as none of the fixed runs has run."""
    if not store.finished().empty:
        raise ValueError(f"{store.path} was planned with a fixed design and runs of it have finished; an adaptive "
                         "sweep there would mix the two. Plan it adaptively in a new directory: ff-plan "
                         "planning.strategy=adaptive sweep_dir=<new>.")
    facts = training_facts(dataset, mode, config)
    return ff.plan_sweep(factory, size_param, sorted(plan["budget"].unique()), spec=spec, **facts)


def run_analyze(cfg: DictConfig) -> ff.Result:
    targets = list(cfg.extrapolate_to) if cfg.extrapolate_to else None
    result = ff.load(cfg.sweep_dir, extrapolate_to=targets, estimator=cfg.estimator)
    print(f"Estimator: {result.estimator}\n")
    print(result.chinchilla_table())
    if len(result.laws):
        laws = result.laws.set_index("quantity")
        print(f"\nN_opt ∝ C^{laws.loc['params', 'exponent']:.4f} "
              f"[{laws.loc['params', 'exponent_lo']:.4f}, {laws.loc['params', 'exponent_hi']:.4f}], "
              f"D_opt ∝ C^{laws.loc['tokens', 'exponent']:.4f}")
        if len(result.located_budgets) >= 3:
            print("\nBacktest, the largest budget held out (predicted without it, 95 % interval, measured):")
            print(readable_backtest(result.backtest()).to_string(index=False))
        if int(cfg.bootstrap) > 0:
            for target in result.targets:
                p = result.predict(target, interval="bootstrap", n_resamples=int(cfg.bootstrap))
                print(f"C={target:.3g}: N_opt {p['optimal_params']:.4g} "
                      f"[{p['optimal_params_low']:.4g}, {p['optimal_params_high']:.4g}] (bootstrap)")
    return result


def run_visualize(cfg: DictConfig) -> dict[str, Path]:
    result = ff.load(cfg.sweep_dir, estimator=cfg.estimator)
    out = Path(cfg.out_dir) if cfg.out_dir else Path(cfg.sweep_dir) / "figures"
    figures = result.plot(html_dir=out)
    written = {name: out / f"{name}.html" for name in figures}
    if cfg.png in (True, "auto", "true"):
        try:
            for name, fig in figures.items():
                fig.write_image(out / f"{name}.png", width=1000, height=550)
                written[f"{name}.png"] = out / f"{name}.png"
        except Exception as exc:  # kaleido, or a browser for it, is missing
            if cfg.png is True or cfg.png == "true":
                raise RuntimeError(f"png=true but the PNG export failed: {exc}. Install kaleido and a Chromium, "
                                   "or use png=false.") from exc
            print(f"(no PNG: {type(exc).__name__}; install kaleido and a Chromium for PNG figures)")
    for path in written.values():
        print(path)
    return written


def _entry(config_name: str, stage: Any) -> Any:
    @hydra.main(config_path="pkg://flops_fit.conf", config_name=config_name, version_base="1.3")
    def main(cfg: DictConfig) -> None:
        try:
            stage(cfg)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:  # a user's mistake: say it, no traceback
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return main


plan_main = _entry("plan", run_plan)
train_main = _entry("train", run_train)
analyze_main = _entry("analyze", run_analyze)
visualize_main = _entry("visualize", run_visualize)
