"""Command-line stages on Hydra: ff-plan, ff-train, ff-analyze, ff-visualize.

Each stage reads and writes the sweep directory (``sweep_dir=``), so they hand off
through it and can run on different machines. What a sweep directory holds is data: ff-train imports
the model factory it records only when flops_fit ships it or the command line names it
(``ff-train model._target_=mypkg.MyModel``). Configs live in ``flops_fit/conf``;
override any value on the command line (``ff-plan compute.max_flops=1e22``) and see
them all with ``--help``. The ``run_*`` functions take a composed config, so scripts
can call the stages without the command line (``flops_fit.examples.example_cli_wrapper``).
"""

from __future__ import annotations

import math
import sys
import urllib.parse
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
# the model factories flops_fit ships: the only ones ff-train imports on a sweep directory's word alone
SHIPPED_FACTORIES = frozenset({"flops_fit.examples.GPT", "flops_fit.examples.ViT", "flops_fit.examples.gpt.GPT",
                               "flops_fit.examples.vit.ViT"})
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


def _number(cfg: DictConfig, key: str, kind: type[int] | type[float], example: str, item: Any = None) -> Any:
    """``cfg``'s ``key`` (or ``item``, one of its values) as an int or a finite float, or a ValueError naming
    the key: a typo on the command line gets one line, not a traceback from deep inside."""
    value = OmegaConf.select(cfg, key) if item is None else item
    if isinstance(value, int) and not isinstance(value, bool):
        return kind(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or (kind is int and not number.is_integer()):
        raise ValueError(f"{key} must be {'an integer' if kind is int else 'a finite number'}, e.g. {key}={example}. "
                         f"Got {value!r} instead.")
    return kind(number)


def _choice(cfg: DictConfig, key: str, allowed: tuple[Any, ...]) -> Any:
    """``cfg``'s ``key``, which must be one of ``allowed`` (compared with its type), or a ValueError naming it."""
    value = OmegaConf.select(cfg, key)
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ValueError(f"{key} must be one of {', '.join(str(a).lower() for a in allowed)}. Got {value!r} instead.")
    return value


def _sweep_dir(cfg: DictConfig, planned: bool = True) -> Path:
    """``sweep_dir`` as a path, refused by name when it is a file, or (``planned``) when ff-plan has not written it."""
    path = Path(cfg.sweep_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"sweep_dir={cfg.sweep_dir} is a file, not a directory: give the directory ff-plan wrote, "
                         "or a new one for ff-plan to create.")
    if planned and not (path / "plan.csv").exists() and not (path / PLAN_CONFIG).exists():
        raise FileNotFoundError(f"sweep_dir={cfg.sweep_dir} holds no plan: run ff-plan sweep_dir={cfg.sweep_dir} first.")
    return path


def _budgets(cfg: DictConfig) -> list[float]:
    if cfg.compute.budgets:
        listed = cfg.compute.budgets if OmegaConf.is_list(cfg.compute.budgets) else [cfg.compute.budgets]
        return [_number(cfg, "compute.budgets", float, "[1e18,3e18,1e19]", b) for b in listed]
    lo = _number(cfg, "compute.min_flops", float, "1e17")
    hi = _number(cfg, "compute.max_flops", float, "1e21")
    n = _number(cfg, "compute.num_budgets", int, "5")
    if not 0 < lo <= hi or n < 1:
        raise ValueError(f"compute.min_flops ({lo:g}) and compute.max_flops ({hi:g}) must be positive with min <= max,"
                         f" and compute.num_budgets ({n}) at least 1.")
    return [float(f"{b:.3g}") for b in np.logspace(math.log10(lo), math.log10(hi), n)]


def run_plan(cfg: DictConfig) -> ff.SweepPlan:
    sweep_dir = _sweep_dir(cfg, planned=False)
    factory, settings = _factory(cfg.model)
    planning = OmegaConf.to_container(cfg.planning, resolve=True)
    spec = PlanSpec.from_options(None, {**planning, "model_kwargs": settings}, "ff-plan")
    plan = ff.plan_sweep(factory, cfg.size_param, _budgets(cfg), spec=spec)
    store = SweepStore(sweep_dir, writer=True)
    store.add_plan(plan, spec)
    # resolved: what ff-train reads back are plain values, never interpolations
    OmegaConf.save(OmegaConf.create({"model": OmegaConf.to_container(cfg.model, resolve=True),
                                     "size_param": cfg.size_param}), sweep_dir / PLAN_CONFIG)
    sweep = ff.SweepPlan(plan, model_cls=factory, model_size_param=cfg.size_param, spec=spec)
    print(repr(sweep))
    target = cfg.model._target_
    confirm = "" if target in SHIPPED_FACTORIES else f" model._target_={target}"  # ff-train imports it when named
    print(f"\nPlan written to {cfg.sweep_dir}/plan.csv; next: ff-train sweep_dir={cfg.sweep_dir}{confirm}")
    return sweep


def _planned_factory(cfg: DictConfig, sweep_dir: Path) -> tuple[Any, dict[str, Any], str]:
    """The model factory, its settings and its size keyword that ff-plan recorded in ``sweep_dir``.

    The directory's files are data: its settings are read as plain values (interpolations unresolved), and
    the factory it names is imported only when flops_fit ships it or ff-train's own config names it
    (``model._target_``), so a shared directory cannot make ff-train run code nobody asked for."""
    recorded = OmegaConf.to_container(OmegaConf.load(sweep_dir / PLAN_CONFIG), resolve=False)
    model = recorded.get("model") if isinstance(recorded, dict) else None
    size_param = recorded.get("size_param") if isinstance(recorded, dict) else None
    where = f"sweep_dir={cfg.sweep_dir}"
    if not isinstance(model, dict) or not isinstance(model.get("_target_"), str):
        raise ValueError(f"{sweep_dir / PLAN_CONFIG} names no model factory (model._target_); plan the sweep again: "
                         f"ff-plan {where}.")
    if not isinstance(size_param, str) or not size_param.isidentifier():
        raise ValueError(f"{sweep_dir / PLAN_CONFIG} gives size_param={size_param!r}, not a keyword name; plan the "
                         f"sweep again: ff-plan {where}.")
    settings = {k: v for k, v in model.items() if k != "_target_"}
    asked, confirmed = model["_target_"], OmegaConf.select(cfg, "model._target_")
    if confirmed is not None and confirmed != asked:
        raise ValueError(f"model._target_={confirmed} was given, but {where} was planned with {asked!r}, and its "
                         f"sizes were found with that factory. Pass model._target_={asked}, or plan {confirmed} "
                         "in a new directory: ff-plan model._target_=... sweep_dir=<new>.")
    if confirmed is None and asked not in SHIPPED_FACTORIES:
        raise ValueError(f"{where} asks ff-train to import and call {asked!r}, a model factory flops_fit does not "
                         "ship; a sweep directory is data, so ff-train runs only code you name. If you trust it, "
                         f"confirm it on the command line: ff-train {where} model._target_={asked}")
    return hydra.utils.get_object(asked), settings, size_param


def run_train(cfg: DictConfig) -> Any:
    sweep_dir = _sweep_dir(cfg)
    if not (sweep_dir / PLAN_CONFIG).exists():
        raise FileNotFoundError(f"sweep_dir={cfg.sweep_dir} has no {PLAN_CONFIG}, so it was not planned by ff-plan: "
                                f"run ff-plan sweep_dir={cfg.sweep_dir} first.")
    mode = _choice(cfg, "mode", ("mock", "local"))
    seed = _number(cfg, "seed", int, "0")
    retry_failed = _choice(cfg, "retry_failed", (False, True))
    factory, settings, size_param = _planned_factory(cfg, sweep_dir)
    store = SweepStore(sweep_dir)
    spec, plan = store.spec(), store.plan()
    loop = {k: cfg[k] for k in ("strategy", "target_precision", "max_compute", "parallel") if cfg[k] is not None}
    dataset = held = loss = config = None
    if mode != "mock":  # the data and the loss: targets from ff-train's own config, never from sweep_dir
        dataset = hydra.utils.instantiate(cfg.dataset)
        held = hydra.utils.instantiate(cfg.eval_dataset) if cfg.eval_dataset is not None else None
        loss = hydra.utils.get_object(cfg.loss._target_)
        config = ff.TrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))
    if loop:
        spec = PlanSpec.from_options(spec, {**loop, "model_kwargs": settings}, "ff-train")
        if spec.strategy == "adaptive" and not ("reason" in plan.columns and plan["reason"].isin(REASONS).all()):
            plan = _adaptive_start(store, plan, spec, factory, size_param, mode, dataset, config)
    workers = None if cfg.get("workers") is None else _number(cfg, "workers", int, "2")
    timeout = None if cfg.get("run_timeout") is None else _number(cfg, "run_timeout", float, "3600")
    executor = ff.process_pool(workers) if workers is not None else None  # runs side by side on this machine
    common = dict(store=str(sweep_dir), retry_failed=retry_failed, model_size_param=size_param,
                  model_kwargs=settings, spec=spec, callbacks=_callbacks(cfg), executor=executor, run_timeout=timeout)
    try:
        if mode == "mock":
            results = ff.run_sweep(plan, factory, mode="mock", seed=seed,
                                   law=ff.PlantedLaw(**OmegaConf.to_container(cfg.law)), **common)
        else:
            results = ff.run_sweep(plan, factory, dataset, loss, mode=mode, train_config=config,
                                   eval_dataset=held, **common)
    finally:
        if executor is not None:
            executor.shutdown()
    counts = results["status"].value_counts().to_dict()
    print(f"{len(results)} runs in {sweep_dir}: {counts}")
    print(f"next: ff-analyze sweep_dir={sweep_dir}")
    return results


def _callbacks(cfg: DictConfig) -> list[Any]:
    """The experiment trackers chosen with ``callbacks=[mlflow]`` (``conf/callbacks``), made before any run trains,
    so an unreachable tracking server is reported at once."""
    chosen = cfg.get("callbacks") or {}
    return [hydra.utils.instantiate(chosen[name]) for name in chosen]


def _tracker_source(source: str) -> dict[str, Any]:
    """``source=`` of ff-analyze as load_results keywords: ``mlflow://HOST:PORT/EXPERIMENT`` (``mlflow+https://``
    for https), ``mlflow:EXPERIMENT`` (MLflow's default tracking URI), ``wandb://ENTITY/PROJECT`` or ``wandb:PATH``
    (an export .csv or a directory of offline runs)."""
    scheme, _, rest = source.partition(":")
    if scheme in ("mlflow", "mlflow+http", "mlflow+https"):
        if not rest.startswith("//"):
            return {"mlflow": rest}
        host, _, experiment = rest[2:].partition("/")
        if not host or not experiment:
            raise ValueError(f"source={source}: give the server and the experiment, e.g. "
                             "source=mlflow://127.0.0.1:5000/my-experiment")
        http = "https" if scheme == "mlflow+https" else "http"
        return {"mlflow": urllib.parse.unquote(experiment), "tracking_uri": f"{http}://{host}"}
    if scheme == "wandb" and rest:
        return {"wandb": rest[2:] if rest.startswith("//") else rest}
    raise ValueError(f"source={source} is not a tracker: give mlflow://HOST:PORT/EXPERIMENT, mlflow:EXPERIMENT, "
                     "wandb://ENTITY/PROJECT or wandb:PATH (or leave source unset to read sweep_dir)")


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


def _finished_sweep(cfg: DictConfig) -> Path:
    """``sweep_dir``, refused with what to do when nothing in it has finished (a saved result passes as it is)."""
    path = Path(cfg.sweep_dir)
    if path.is_dir() and not (path / "plan.csv").exists():
        return path  # a result written by Result.save, or not a sweep: flops_fit.load says which
    path = _sweep_dir(cfg)
    store = SweepStore(path)
    planned, finished = len(store.plan()), store.finished()
    if finished.empty:
        raise ValueError(f"nothing in {cfg.sweep_dir} has finished yet ({planned} runs planned): run ff-train "
                         f"sweep_dir={cfg.sweep_dir} first.")
    statuses = finished["status"].value_counts().to_dict() if "status" in finished.columns else {}
    if "completed" not in statuses:
        raise ValueError(f"none of the {len(finished)} finished runs in {cfg.sweep_dir} completed ({statuses}; "
                         f"their errors are in {cfg.sweep_dir}/runs/*.json): fix the cause and rerun ff-train "
                         f"sweep_dir={cfg.sweep_dir} retry_failed=true.")
    return path


def _result(cfg: DictConfig, **options: Any) -> ff.Result:
    """The fitted runs of ``source`` (an experiment tracker) when given, else of ``sweep_dir``."""
    if cfg.get("source"):
        frame = ff.load_results(**_tracker_source(str(cfg.source)), sweep=cfg.get("sweep"))
        return ff.Result.from_results(frame, estimator=cfg.estimator, **options)
    return ff.load(_finished_sweep(cfg), estimator=cfg.estimator, **options)


def run_analyze(cfg: DictConfig) -> ff.Result:
    if cfg.extrapolate_to is None or OmegaConf.is_list(cfg.extrapolate_to):
        listed = list(cfg.extrapolate_to or [])
    else:
        listed = [cfg.extrapolate_to]
    targets = [_number(cfg, "extrapolate_to", float, "[1e23,1e24]", t) for t in listed] or None
    bootstrap = _number(cfg, "bootstrap", int, "1000")
    result = _result(cfg, extrapolate_to=targets)
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
        if bootstrap > 0:
            for target in result.targets:
                p = result.predict(target, interval="bootstrap", n_resamples=bootstrap)
                print(f"C={target:.3g}: N_opt {p['optimal_params']:.4g} "
                      f"[{p['optimal_params_low']:.4g}, {p['optimal_params_high']:.4g}] (bootstrap)")
    return result


def run_visualize(cfg: DictConfig) -> dict[str, Path]:
    png = _choice(cfg, "png", ("auto", True, False))
    result = _result(cfg)
    out = Path(cfg.out_dir) if cfg.out_dir else Path("figures") if cfg.get("source") else Path(cfg.sweep_dir) / "figures"
    figures = result.plot(html_dir=out)
    written = {name: out / f"{name}.html" for name in figures}
    if png in (True, "auto"):
        try:
            for name, fig in figures.items():
                fig.write_image(out / f"{name}.png", width=1000, height=550)
                written[f"{name}.png"] = out / f"{name}.png"
        except Exception as exc:  # kaleido, or a browser for it, is missing
            if png is True:
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
        except (ValueError, FileNotFoundError, RuntimeError, ConnectionError, ImportError) as exc:  # a user's mistake
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return main


plan_main = _entry("plan", run_plan)
train_main = _entry("train", run_train)
analyze_main = _entry("analyze", run_analyze)
visualize_main = _entry("visualize", run_visualize)
