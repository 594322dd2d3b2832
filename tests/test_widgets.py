"""The widgets without a browser: set values, click, assert on the state a view would be built from."""

from __future__ import annotations

import html
import threading
import time

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from flops_fit import PlantedLaw, plan_sweep, run_sweep  # noqa: E402
from flops_fit.examples import GPT  # noqa: E402
from flops_fit.widgets import LiveFigure, SweepDesigner, SweepMonitor  # noqa: E402

GPT4 = {"n_layer": 4}


def run_markers(live: LiveFigure) -> int:
    """Points of finished runs in an IsoFLOP LiveFigure's synced state (what a reloaded view draws)."""
    return sum(len(t["x"]) for t in live.widget._widget_data
               if t.get("mode") == "markers" and t.get("marker", {}).get("symbol") not in ("star", "circle-open"))


def test_live_figure_state_holds_every_update():
    import plotly.graph_objects as go

    live = LiveFigure(go.Figure(go.Scatter(x=[], y=[], mode="markers")))
    for n in range(1, 6):  # same trace kinds: restyled in place
        live.show(go.Figure(go.Scatter(x=list(range(n)), y=list(range(n)), mode="markers")))
    assert live.state_points() == 5
    live.show(go.Figure([go.Scatter(x=[1, 2], y=[1, 2]), go.Bar(x=[1], y=[3])]))  # new kinds: replaced
    state = live.widget.get_state()
    assert [t["type"] for t in state["_widget_data"]] == ["scatter", "bar"]
    assert live.state_points() == 3
    assert list(live.widget.data[0].x) == [1, 2]


def test_a_redraw_sends_only_what_changed_in_one_message(monkeypatch):
    """LiveFigure.update builds no plotly trace objects, sends the traces that changed in one update message, and
    saves copies of those traces only; the saved state still holds the whole figure, a view's legend click too."""
    import numpy as np
    import plotly.graph_objects as go

    live = LiveFigure(go.Figure([go.Scatter(x=[1, 2], y=[1, 2], mode="markers"), go.Scatter(x=[1], y=[3])]))
    messages: list[dict] = []
    live.widget.observe(lambda change: change["new"] and messages.append(change["new"]), names="_py2js_update")
    built: list[int] = []
    scatter_init = go.Scatter.__init__
    monkeypatch.setattr(go.Scatter, "__init__", lambda self, *a, **k: built.append(1) or scatter_init(self, *a, **k))
    line = {"type": "scatter", "x": [1], "y": [3]}

    def points(n):
        return {"type": "scatter", "x": np.arange(n, dtype=float), "y": np.arange(n, dtype=float), "mode": "markers"}

    live.widget._js2py_restyle = {"style_data": {"visible": ["legendonly"]}, "style_traces": [1],
                                  "source_view_id": "a view"}  # what a legend click on the second trace sends
    live.update([points(3), line], {"title.text": "3 points"})
    assert len(messages) == 1 and messages[0]["style_traces"] == [0] and set(messages[0]["style_data"]) == {"x", "y"}
    assert messages[0]["layout_data"] == {"title.text": "3 points"}
    state = live.widget.get_state()
    assert live.state_points() == 4 and state["_widget_data"][1]["visible"] == "legendonly"
    assert state["_widget_layout"]["title"]["text"] == "3 points"
    saved = live.widget._widget_data
    live.update([points(3), line], {"title.text": "3 points"})  # nothing changed: nothing sent
    live.update([points(5), line])
    assert len(messages) == 2 and messages[1]["style_traces"] == [0] and not messages[1]["layout_data"]
    assert live.widget._widget_data[1] is saved[1] and live.state_points() == 6  # the unchanged trace: not copied
    assert built == [] and [t.type for t in live.widget.data] == ["scatter", "scatter"]
    assert list(live.widget.data[0].x) == [0, 1, 2, 3, 4] and live.widget.data[1].visible == "legendonly"


def test_monitor_redraws_build_no_plotly_traces(monkeypatch):
    import plotly.graph_objects as go

    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19], model_kwargs=GPT4)
    gate = threading.Event()
    handle = run_sweep(plan, mode="mock", background=True,
                       callbacks=[lambda event: gate.wait(30) if event["type"] == "run_start" else None])
    monitor = SweepMonitor(handle, refresh_every=0.02)  # its figures are built here, from empty snapshots
    built: list[int] = []
    scatter_init = go.Scatter.__init__
    monkeypatch.setattr(go.Scatter, "__init__", lambda self, *a, **k: built.append(1) or scatter_init(self, *a, **k))
    gate.set()
    monitor.wait(60)
    assert run_markers(monitor.isoflops) == 27 and monitor.laws.state_points() > 0
    assert monitor.curves.state_points() == len(handle.curves()) > 0
    assert built == []  # every redraw sent plain data


def test_designer_plans_from_its_controls():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4)
    assert designer.budgets == [1e17, 1e18, 1e19, 1e20, 1e21]
    assert len(designer.plan) == 45 and not designer.run_button.disabled
    assert "45 runs" in designer.summary.value and "estimated time" in designer.summary.value
    designer.n_budgets.value = 3
    designer.points.value = 5
    assert designer.budgets == [1e17, 1e19, 1e21]
    assert len(designer.plan) == 15 and designer.table.value.count("</tr>") == 16  # header + 15 runs
    designer.budget_range.value = (1e18, 1e19)
    assert sorted(designer.plan["budget"].unique()) == [1e18, 3.2e18, 1e19]
    designer.size_span.value = 10.0
    spans = designer.plan.groupby("budget")["params"].agg(lambda p: p.max() / p.min())
    assert (spans < 20).all()


def test_designer_says_why_a_plan_cannot_be_built():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4)
    designer.budget_range.value = (1e9, 3e9)  # far below the smallest 4-layer GPT with a 50k vocabulary
    assert designer.plan is None and designer.run_button.disabled
    assert "No plan" in designer.summary.value and "cannot serve" in designer.summary.value
    with pytest.raises(ValueError, match="no plan to run"):
        designer.run()
    designer.budget_range.value = (1e17, 1e21)
    assert designer.plan is not None and not designer.run_button.disabled


def test_designer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'mode' parameter of SweepDesigner"):
        SweepDesigner(GPT, "d_model", mode="local")  # no data to train on
    with pytest.raises(ValueError, match="'budgets' parameter"):
        SweepDesigner(GPT, "d_model", budgets=(1e21, 1e17))
    with pytest.raises(ValueError, match="'model_cls' parameter"):
        SweepDesigner("GPT", "d_model")
    assert SweepDesigner(GPT, "d_model", model_kwargs=GPT4).mode.options == ("mock",)


def test_run_button_runs_the_plan_live():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, law=PlantedLaw(), seed=3)
    designer.run_button.click()
    monitor = designer.monitor
    assert designer.monitor_box.children == (monitor.widget,)
    results = monitor.wait(60)
    assert results["status"].eq("completed").all() and len(results) == 45
    assert run_markers(monitor.isoflops) == 45
    assert monitor.table.value.count("completed") == 45
    assert monitor.overall.value == 45 and all(bar.bar_style == "success" for bar in monitor.bars.values())
    assert "done: 45 completed" in monitor.status.value
    result = monitor.result()
    assert abs(result.exponent("params") - PlantedLaw().a) < 0.02
    assert monitor.laws.state_points() > 0 and "N_opt" in monitor.optima.value
    assert "Backtest" in monitor.backtest.value and monitor.backtest.value.count("</tr>") == 3  # 5 budgets done
    deadline = time.monotonic() + 5
    while designer.run_button.disabled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not designer.run_button.disabled  # ready for another sweep


def test_stop_keeps_what_finished_and_the_kernel_stays_free():
    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19], model_kwargs=GPT4)
    gate = threading.Event()

    def slow(event):  # each mock run takes 0.1 s
        if event["type"] == "run_end":
            gate.wait(0.1)

    monitor = SweepMonitor.start(plan, mode="mock", callbacks=[slow], refresh_every=0.05)
    seen, deadline = [], time.monotonic() + 30
    while (not seen or seen[-1] < 6) and time.monotonic() < deadline:  # the main thread is free meanwhile
        seen.append(run_markers(monitor.isoflops))
        time.sleep(0.02)
    monitor.stop_button.click()
    results = monitor.wait(30)
    finished = int(results["status"].eq("completed").sum())
    assert 0 < finished < len(plan) and results["status"].isin(["completed", "pending"]).all()
    assert max(seen) > min(seen)  # points arrived while the test ran
    assert run_markers(monitor.isoflops) == finished
    assert "stopped: kept" in monitor.status.value and monitor.stop_button.disabled
    assert monitor.table.value.count("not run") == len(plan) - finished  # not "pending": the sweep is over
    assert "pending" not in monitor.table.value
    unrun = results.loc[results["status"] == "pending", "run_id"]
    assert all(monitor.bars[rid].description == "not run" for rid in unrun)
    assert all(monitor.bars[rid].description == "" for rid in results["run_id"] if rid not in set(unrun))


def test_monitor_streams_steps_of_local_training():
    from flops_fit import TrainConfig
    from flops_fit.examples import lm_loss, stdlib_datasets

    train, held = stdlib_datasets(seq_len=16, max_bytes=200_000)
    designer = SweepDesigner(
        GPT, "d_model", train, lm_loss, mode="local", budgets=(1e9, 3e9), n_budgets=2, points_per_budget=3,
        tokens_per_param=100, size_span=4, multiple_of=2, eval_dataset=held, flops_per_second=1e10,
        model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2},
        train_config=TrainConfig(lr=3e-3, batch_size=16, log_points=10))
    assert designer.mode.options == ("mock", "local") and "at 1e+10 FLOP/s" in designer.summary.value
    monitor = designer.run()
    results = monitor.wait(120)
    assert results["status"].eq("completed").all()
    steps = {e["run_id"]: e["steps"] for e in monitor.handle.events if e["type"] == "run_start"}
    assert {rid: bar.max for rid, bar in monitor.bars.items()} == steps  # a bar per run, sized to its steps
    assert monitor.curves.state_points() == len(monitor.handle.curves()) >= 6 * 10  # every logged point drawn
    assert results["steps"].tolist() == [steps[r] for r in results["run_id"]]


def test_monitor_rejects_what_is_not_a_handle():
    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19], model_kwargs=GPT4)
    with pytest.raises(ValueError, match="'handle' parameter of SweepMonitor"):
        SweepMonitor(run_sweep(plan, mode="mock"))


def test_missing_widget_packages_get_an_install_hint(monkeypatch):
    import importlib.util

    from flops_fit.widgets import _deps

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "anywidget" else real(name, *a))
    with pytest.raises(ImportError, match=r'pip install "flops_fit\[notebooks\]" \(missing: anywidget\)'):
        _deps.require_widgets("SweepDesigner")


def test_monitor_shows_a_resumed_sweep_at_once(tmp_path):
    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19], model_kwargs=GPT4)
    run_sweep(plan, mode="mock", store=tmp_path)
    monitor = SweepMonitor.start(plan, mode="mock", store=tmp_path)
    results = monitor.wait(30)
    assert isinstance(results, pd.DataFrame) and results["status"].eq("completed").all()
    assert run_markers(monitor.isoflops) == len(plan) and monitor.overall.value == len(plan)


def test_a_second_run_waits_for_the_first():
    gate = threading.Event()

    def held(event):  # every run waits until the test lets it go
        if event["type"] == "run_end":
            gate.wait(10)

    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, n_budgets=2, points_per_budget=3, callbacks=[held])
    designer.run_button.click()
    assert designer.run_button.disabled
    with pytest.raises(RuntimeError, match="still running"):
        designer.run()
    designer.n_budgets.value = 3  # replanning while it runs leaves the button off
    assert designer.run_button.disabled and len(designer.plan) == 9
    gate.set()
    assert designer.monitor.wait(30)["status"].eq("completed").all()
    deadline = time.monotonic() + 5
    while designer.run_button.disabled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not designer.run_button.disabled


def test_a_redraw_keeps_the_users_zoom():
    import plotly.graph_objects as go

    def fig(n):
        f = go.Figure(go.Scatter(x=list(range(1, n + 1)), y=list(range(n)), mode="markers"))
        return f.update_layout(title=f"{n} points").update_xaxes(type="log", title_text="N")

    live = LiveFigure(fig(3))
    live.widget.plotly_relayout({"xaxis.range": [0.1, 0.4], "xaxis.autorange": False})  # what a zoom sends
    live.show(fig(5))
    layout = live.widget.get_state()["_widget_layout"]
    assert layout["xaxis"]["range"] == [0.1, 0.4] and layout["xaxis"]["title"]["text"] == "N"
    assert layout["title"]["text"] == "5 points" and live.state_points() == 5


def test_run_button_errors_show_in_the_app(tmp_path):
    with pytest.raises(ValueError, match="'options' parameter of SweepDesigner.*Got \\['stroe'\\]"):
        SweepDesigner(GPT, "d_model", model_kwargs=GPT4, stroe=str(tmp_path))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, store=str(not_a_dir))
    designer.run_button.click()  # raises inside the click handler: shown, not lost in the log console
    assert designer.monitor is None and not designer.run_button.disabled
    shown = html.unescape(designer.summary.value)
    assert "Could not start the sweep" in shown and "The 'store' parameter of run_sweep" in shown


def test_designer_sliders_fit_the_values_given():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, budgets=(1e21, 1e23), n_budgets=12,
                             points_per_budget=17, size_span=3000.0, tokens_per_param=0.5)
    assert (designer.n_budgets.value, designer.points.value) == (12, 17)
    assert designer.size_span.value == pytest.approx(3000) and designer.tokens_per_param.value == pytest.approx(0.5)
    assert designer.budgets[0] == 1e21 and designer.budgets[-1] == 1e23
    with pytest.raises(ValueError, match="'points_per_budget' parameter"):
        SweepDesigner(GPT, "d_model", points_per_budget=2)


def test_stop_during_local_training_leaves_no_half_run_drawn():
    from flops_fit import TrainConfig
    from flops_fit.examples import lm_loss, stdlib_datasets

    train, held = stdlib_datasets(seq_len=16, max_bytes=200_000)
    plan_kw = {"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2}
    designer = SweepDesigner(
        GPT, "d_model", train, lm_loss, mode="local", budgets=(1e9, 3e9), n_budgets=2, points_per_budget=3,
        tokens_per_param=100, size_span=4, multiple_of=2, eval_dataset=held, flops_per_second=1e10,
        model_kwargs=plan_kw, train_config=TrainConfig(lr=3e-3, batch_size=16, log_points=10))
    monitor = designer.run()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # stop part-way through the second run
        steps = [e for e in monitor.handle.events if e["type"] == "step"]
        if len({e["run_id"] for e in steps}) >= 2:
            break
        time.sleep(0.01)
    monitor.stop_button.click()
    results = monitor.wait(60)
    pending = results.loc[results["status"] == "pending", "run_id"]
    assert len(pending) >= 4
    assert all(monitor.bars[rid].value == 0 for rid in pending)
    assert monitor.curves.state_points() == len(monitor.handle.curves())  # only finished runs' curves
    assert "stopped: kept" in monitor.status.value and "Pass store=" in monitor.status.value
    monitor.stop()  # after the end: nothing changes
    assert monitor.stop_button.description == "Stopped"


def test_designer_limits_the_size_knob():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, n_budgets=3)
    assert designer.size_range is None and designer.size_limits.disabled
    low, high = designer.size_limits.value
    assert (low, high) == (designer.plan["size"].min(), designer.plan["size"].max())
    designer.limit_sizes.value = True
    designer.size_limits.value = (32, 4096)  # too narrow for 1e21: the planner says so, Run is off
    assert designer.size_range == (32, 4096) and designer.plan is None and designer.run_button.disabled
    assert "size_range" in html.unescape(designer.summary.value)
    designer.budget_range.value = (1e17, 1e18)
    assert designer.plan is not None and designer.plan["size"].between(32, 4096).all()
    designer.limit_sizes.value = False
    assert designer.size_range is None and designer.plan["size"].max() > 0
    given = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, budgets=(1e17, 1e18), n_budgets=3,
                          size_range=(32, 4096))
    assert given.limit_sizes.value and given.plan["size"].between(32, 4096).all()
    with pytest.raises(ValueError, match="'size_range' parameter of SweepDesigner"):
        SweepDesigner(GPT, "d_model", size_range=(512, 64))


def test_designer_runs_an_adaptive_sweep_and_the_monitor_follows_it():
    """The strategy, target and cap are controls; both designs' compute is shown; the monitor grows with the
    runs the loop adds, draws those not yet run as hollow markers and says why it stopped."""
    designer = SweepDesigner(GPT, "d_model", model_kwargs={"n_layer": 4}, n_budgets=3)
    assert designer.target_precision.disabled and designer.compute_cap.disabled
    designer.strategy.value = "adaptive"
    assert not designer.target_precision.disabled
    assert len(designer.plan) == 9 and (designer.plan["reason"] == "new budget").all()
    assert "start design of <b>9 runs</b>" in designer.summary.value and "fixed design" in designer.summary.value
    designer.target_precision.value = 0.25
    designer.compute_cap.value = 0.8
    spec = designer.current_spec()
    assert spec.strategy == "adaptive" and spec.max_compute == pytest.approx(0.8 * 9 * sum(designer.budgets))
    designer.run_button.click()
    results = designer.monitor.wait()
    monitor = designer.monitor
    assert len(results) > 9 and set(monitor.bars) == set(results["run_id"]) and monitor.overall.max == len(results)
    assert "stopped:" in monitor.adaptive.value and "target +-25%" in monitor.adaptive.value
    assert results["flops"].sum() <= spec.max_compute


def test_runs_not_yet_run_are_hollow_markers():
    from flops_fit.live import isoflops_figure, snapshot

    plan = plan_sweep(GPT, "d_model", [1e17, 1e18], model_kwargs={"n_layer": 4})
    results = run_sweep(plan, mode="mock")
    part = results.copy()
    part.loc[part.index[12:], "status"] = "pending"  # the second budget: 3 of 9 done
    fig = isoflops_figure(snapshot(part))
    hollow = [t for t in fig.data if t.marker.symbol == "circle-open"]
    assert [len(t.x) for t in hollow] == [0, 6]
    assert "proposed, not run yet (grid)" in hollow[1].hovertemplate.replace("%{customdata[1]}", "grid")


def test_run_button_disables_and_says_starting_before_the_sweep_starts():
    """Within 100 ms of the click the button is off and the monitor area says "starting…"; the sweep's first run
    waits until its monitor is on screen, so a paced mock sweep is seen filling in."""
    seen: list[tuple[float, str, bool]] = []
    started: list[float] = []
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, n_budgets=3,
                             callbacks=[lambda e: started.append(time.perf_counter()) if e["type"] == "sweep_start"
                                        else None])
    designer.monitor_box.observe(lambda change: seen.append(
        (time.perf_counter(), " ".join(getattr(w, "value", "") for w in change["new"]), designer.run_button.disabled)),
        names="children")
    clicked = time.perf_counter()
    designer.run_button.click()
    assert designer.run_button.disabled and designer.monitor is not None
    first_at, first, disabled = seen[0]
    assert "starting…" in first and disabled and first_at - clicked < 0.1
    assert seen[-1][1] == "" and designer.monitor_box.children == (designer.monitor.widget,)
    results = designer.monitor.wait(60)
    assert started and started[0] > seen[-1][0]  # the monitor was shown before the sweep began
    assert results["status"].eq("completed").all()
    deadline = time.monotonic() + 5
    while designer.run_button.disabled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not designer.run_button.disabled


def test_rerunning_closes_the_last_monitors_widgets():
    from ipywidgets.widgets.widget import _instances  # the kernel's widget registry (ipywidgets 8)

    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, n_budgets=3, pace=0)

    def run() -> SweepMonitor:
        designer.run_button.click()
        monitor = designer.monitor
        monitor.wait(60)
        deadline = time.monotonic() + 5
        while designer.run_button.disabled and time.monotonic() < deadline:
            time.sleep(0.02)
        return monitor

    first = run()
    after_one = len(_instances)
    old = [first.widget, first.overall, first.stop_button, first.isoflops.widget, first.laws.widget,
           first.curves.widget, *first.bars.values(), first.overall.layout, first.overall.style]
    for _ in range(10):
        run()
    assert abs(len(_instances) - after_one) <= 0.1 * after_one
    alive = {id(w) for w in _instances.values()}
    assert all(w.comm is None and id(w) not in alive for w in old)  # every widget of the first monitor: closed


def test_an_old_monitor_says_it_is_outdated_when_the_plan_changes():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, n_budgets=3, pace=0)
    designer.run_button.click()
    monitor = designer.monitor
    monitor.wait(60)
    assert designer.monitor_box.children == (monitor.widget,)
    designer.points.value = 5
    assert designer.monitor_box.children == (designer.outdated, monitor.widget)
    assert "outdated: the plan changed since this sweep ran" in html.unescape(
        designer.outdated.value.replace("<b>", "").replace("</b>", ""))
    designer.points.value = 9  # back to the plan it ran
    assert designer.monitor_box.children == (monitor.widget,)
    designer.mode.value = "mock"
    designer.budget_range.value = (1e9, 3e9)  # no plan at all: outdated too
    assert designer.plan is None and designer.monitor_box.children[0] is designer.outdated


def test_the_estimate_is_recalibrated_and_the_monitor_shows_time_left():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, n_budgets=3, pace=0.1)
    assert "estimated time <b>2.8 s</b> (simulated)" in designer.summary.value  # 27 runs of 0.1 s (+2 ms)
    designer.run_button.click()
    monitor, shown = designer.monitor, []
    while not monitor.done:
        shown.append(monitor.status.value)
        time.sleep(0.05)
    assert any(" s left" in text or "under a second left" in text for text in shown)  # once a run finished
    assert not any("left" in text for text in shown if "running: 0 of" in text)  # none before
    assert "as the last sweep's runs went" in designer.summary.value


def test_eta_comes_from_the_finished_runs():
    from flops_fit.widgets.monitor import eta, measured_rate

    plan = plan_sweep(GPT, "d_model", [1e17, 1e18], model_kwargs=GPT4)
    results = run_sweep(plan, mode="mock")
    assert eta(results.assign(status="pending")) is None
    part = results.assign(status=["completed"] * 3 + ["pending"] * (len(plan) - 3), wall_time=0.5)
    assert measured_rate(part) == ("run", 0.5) and eta(part) == pytest.approx(0.5 * (len(plan) - 3))
    real = part.assign(device="cpu", wall_time=1.0)  # trained: FLOP/s over the finished runs' wall time
    rate = real["flops"][:3].sum() / 3.0
    assert measured_rate(real) == ("flops", pytest.approx(rate))
    assert eta(real) == pytest.approx(real["flops"][3:].sum() / rate)


def test_pace_slows_mock_runs_and_is_checked():
    plan = plan_sweep(GPT, "d_model", [1e17], model_kwargs=GPT4)  # 9 runs
    started = time.perf_counter()
    results = run_sweep(plan, mode="mock", pace=0.05)
    assert time.perf_counter() - started >= 9 * 0.05 and results["status"].eq("completed").all()
    assert run_sweep(plan, mode="mock", pace=None)["loss"].tolist() == results["loss"].tolist()
    handle = run_sweep(plan, mode="mock", pace=10, background=True)  # Stop ends a paced run at once
    time.sleep(0.1)
    handle.stop()
    assert handle.wait(5)["status"].eq("pending").all()
    for bad in (-1, "fast", True, float("nan")):
        with pytest.raises(ValueError, match="'pace' parameter of run_sweep must be a non-negative number"):
            run_sweep(plan, mode="mock", pace=bad)
    with pytest.raises(ValueError, match="'pace' parameter of run_sweep must be None or 0 with mode='local'"):
        run_sweep(plan, mode="local", pace=0.1)
    with pytest.raises(ValueError, match="'pace' parameter of SweepDesigner"):
        SweepDesigner(GPT, "d_model", model_kwargs=GPT4, pace=-0.5)
    assert SweepDesigner(GPT, "d_model", model_kwargs=GPT4).pace == 0.05
