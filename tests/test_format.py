"""One formatter behind every repr and table: numbers, SweepPlan, the comparison, the parametric law,
diagnostics, and D_opt intervals in the Chinchilla table."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import flops_fit as ff
from flops_fit import _format as fmt
from flops_fit.approaches.diagnostics import DIAGNOSTIC_COLUMNS
from flops_fit.examples import GPT

from .conftest import BUDGETS

RAW_FLOAT = re.compile(r"\d\.\d{5,}|np\.float64")  # a number printed with all its digits, or a numpy scalar's repr


@pytest.fixture(scope="module")
def result():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ff.FitWarning)
        return ff.find_optimal(GPT, "d_model", "d", "l", compute_budgets=BUDGETS[:3], seed=0,
                               model_kwargs={"n_layer": 4})


def test_number_formats():
    assert [fmt.human(v) for v in (2_979_760, 1.93e9, 306e9, 1.07e12)] == ["2.98M", "1.93B", "306B", "1.07T"]
    assert fmt.flops(1e17) == "1.00e+17" and fmt.flops(np.float64(5.76e23)) == "5.76e+23"
    assert fmt.loss(2.23751) == "2.238" and fmt.exponent(0.49876) == "0.499"
    assert fmt.ratio(1877.094675) == "1877.1" and fmt.ratio(0.2345) == "0.23"
    assert fmt.interval(2.5e9, 2e9, 3e9, fmt.human) == "2.5B (2B–3B)"
    assert fmt.interval(2.5e9, float("nan"), float("nan"), fmt.human) == "2.5B"
    assert fmt.number(float("nan")) == "" and fmt.number(1.234567) == "1.235"


def test_html_table_escapes_and_explains():
    html = fmt.html_table(["a<b"], [["<x>"]], caption="c & d", legend={"a<b": "why"})
    assert "&lt;x&gt;" in html and "c &amp; d" in html and "<li><b>a&lt;b</b>: why</li>" in html


def test_sweep_plan_repr_is_formatted():
    plan = ff.find_optimal(GPT, "d_model", compute_budgets=BUDGETS[:3], train=False, model_kwargs={"n_layer": 4})
    text, html = repr(plan), plan._repr_html_()
    assert text.startswith("SweepPlan(27 runs over 3 budgets, total ")
    assert not RAW_FLOAT.search(text) and "1.00e+17" in text and "e+17 " not in plan.describe().replace(
        "1.00e+17", "")
    assert "sizes (d_model)" in text and re.search(r"\d+(\.\d+)?[KMB]–\d+(\.\d+)?[KMB]", text)
    assert "<table" in html and "<caption" in html and "tokens per parameter" in html  # the columns explained
    assert not RAW_FLOAT.search(html)
    assert list(plan.summary().columns)[:2] == ["runs", "sizes"]  # the frame itself is unchanged


def test_comparison_stays_a_dataframe_and_displays_readably(result):
    table = result.compare_approaches(n_resamples=5, seed=0)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["approach", "a", "a_low", "a_high", "params", "params_low", "params_high",
                                   "resamples", "reason"]
    assert type(table.set_index("approach")) is pd.DataFrame  # anything derived is a plain frame
    html, text = table._repr_html_(), repr(table)
    assert "at 1.00e+21 FLOPs" in html and "95% intervals" in text
    assert "the fitted exponent of N_opt" in html and not RAW_FLOAT.search(html) and not RAW_FLOAT.search(text)
    assert re.search(r"0\.\d{3} \(0\.\d{3}–0\.\d{3}\)", text)  # a with its interval, 3 decimals


def test_parametric_law_explains_g_and_objective():
    law = ff.PlantedLaw()
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 6))
    runs = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
    runs["loss"] = law.loss(runs["params"].to_numpy(), runs["tokens"].to_numpy())
    fit = ff.fit_parametric(runs)
    assert isinstance(fit, pd.DataFrame) and list(fit.columns)[-3:] == ["G", "objective", "n_points"]
    html = fit._repr_html_()
    assert "<b>G</b>: the frontier" in html and "N_opt = G (C/6)^a" in html
    assert "<b>objective</b>: the minimised Huber loss" in html
    assert "<b>A, alpha</b>" in html and not RAW_FLOAT.search(html) and not RAW_FLOAT.search(repr(fit))
    assert "G (C/6)^a" in ff.fit_parametric.__doc__ and "Huber loss" in ff.fit_parametric.__doc__


def test_empty_diagnostics_say_nothing_to_report():
    found = ff.diagnose(pd.DataFrame(columns=["budget"]), pd.DataFrame(), emit=False)
    assert isinstance(found, pd.DataFrame) and found.empty and list(found.columns) == DIAGNOSTIC_COLUMNS
    assert "nothing to report" in repr(found) and "nothing to report" in found._repr_html_()


def test_diagnostics_with_findings_show_them(result):
    found = result.diagnostics(emit=False)
    far = ff.diagnose(result.optima, result.laws, targets=[1e30], emit=False)
    assert "nothing to report" not in far._repr_html_() and "extrapolation far beyond the data" in far._repr_html_()
    assert "<b>check</b>" in far._repr_html_()
    assert found.empty or "<table" in found._repr_html_()


def test_chinchilla_table_has_d_opt_intervals(result):
    frame = result.table()
    extrapolated = frame[frame["source"].str.endswith("extrapolation")]
    assert len(extrapolated) == 2
    assert (extrapolated["tokens_low"] < extrapolated["tokens"]).all()
    assert (extrapolated["tokens"] < extrapolated["tokens_high"]).all()
    for row in extrapolated.itertuples():  # the tokens law's own interval, as predict gives it
        p = result.predict(row.compute)
        assert (row.tokens_low, row.tokens_high) == pytest.approx((p["optimal_tokens_low"], p["optimal_tokens_high"]))
        # under C = 6ND, D_opt's bounds mirror N_opt's: D_low ≈ C / (6 N_high)
        assert row.tokens_low == pytest.approx(row.compute / (6 * row.params_high), rel=0.02)
    assert frame.loc[~frame["source"].str.endswith("extrapolation"), "tokens_low"].isna().all()
    lines = result.chinchilla_table().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        extrapolated_row = "extrapolation" in cells["Source"]
        for column in ("N_opt", "D_opt", "Loss"):
            assert ("–" in cells[column]) == extrapolated_row, (column, line)
    assert result.chinchilla_table() == result.chinchilla_table()  # deterministic: ff-analyze prints it


def test_budgets_a_user_prints_are_plain_numbers(result):
    assert "np.float64" not in repr(result.located_budgets)
    assert all(type(b) is float for b in result.located_budgets)


def test_optima_and_laws_display_formatted(result):
    assert isinstance(result.optima, pd.DataFrame) and isinstance(result.laws, pd.DataFrame)
    optima, laws = result.optima._repr_html_(), result.laws._repr_html_()
    assert "1.00e+17" in optima and "<b>usable</b>" in optima and not RAW_FLOAT.search(optima)
    assert "N_opt = k C^a" in laws and "<b>exponent</b>" in laws and not RAW_FLOAT.search(laws)
    assert "covariance" not in laws  # the display leaves the matrix out; the frame keeps it
    assert "covariance" in result.laws.columns
    empty = ff.Result.from_results(result.results[result.results["budget"] == BUDGETS[0]]).laws
    assert empty.empty and "none fitted" in repr(empty)
