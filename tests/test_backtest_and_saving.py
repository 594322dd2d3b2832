"""A result that can be checked: backtests against held-out budgets, and saving as plain JSON and CSV."""

import json

import pandas as pd
import pytest

import flops_fit as ff
from flops_fit.examples import GPT

from .conftest import BUDGETS


@pytest.fixture(scope="module")
def result():
    return ff.find_optimal(GPT, "d_model", "d", "l", compute_budgets=BUDGETS, seed=1, model_kwargs={"n_layer": 4})


def test_backtest_predicts_the_held_out_budget(result):
    table = result.backtest()
    assert list(table.columns) == ["budget", "quantity", "predicted", "low", "high", "measured", "relative_error",
                                   "held"]
    assert table["budget"].tolist() == [max(BUDGETS)] * 2 and table["quantity"].tolist() == ["params", "loss"]
    # the planted law is a power law, so a fit on 4 budgets predicts the 5th well, inside its interval
    assert table["held"].all() and (table["relative_error"].abs() < 0.1).all()
    assert (table["low"] < table["predicted"]).all() and (table["predicted"] < table["high"]).all()
    two = result.backtest(holdout=2)
    assert sorted(two["budget"].unique()) == BUDGETS[-2:]
    assert "backtest" in result.plot()


def test_backtest_says_what_it_needs(result):
    with pytest.raises(ValueError, match="'holdout' parameter of Result.backtest must be a positive integer"):
        result.backtest(holdout=0)
    with pytest.raises(ValueError, match="'holdout' parameter of Result.backtest must be at most 3 here"):
        result.backtest(holdout=4)


def test_a_saved_result_reloads_and_reproduces_its_constants(result, tmp_path):
    result.save(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["curves.csv", "result.json", "results.csv"]
    record = json.loads((tmp_path / "r" / "result.json").read_text())
    assert record["estimator"]["name"] == "vpnls" and record["flops_fit_version"] == ff.__version__
    assert set(record["fit"]["law"][0]) >= {"E", "A", "B", "alpha", "beta", "covariance"}
    assert len(record["fit"]["law"][0]["covariance"]) == 5
    assert {law["quantity"] for law in record["fit"]["laws"]} == {"params", "tokens", "loss"}
    assert len(record["fit"]["laws"][0]["covariance"]) == 2 and len(record["data"]["results"]["sha256"]) == 64
    back = ff.load(tmp_path / "r")
    pd.testing.assert_frame_equal(back.laws, result.laws)
    assert back.law == result.law and back.targets == result.targets
    assert back.predict(1e23) == result.predict(1e23)


def test_a_changed_file_is_caught(result, tmp_path):
    result.save(tmp_path / "r")
    data = tmp_path / "r" / "results.csv"
    data.write_text(data.read_text().replace("completed", "completed ", 1))
    with pytest.raises(ValueError, match="results.csv has changed since the result was saved"):
        ff.load(tmp_path / "r")
    result.save(tmp_path / "s")
    record = json.loads((tmp_path / "s" / "result.json").read_text())
    record["fit"]["laws"][0]["exponent"] += 0.01  # a constant that the data does not support
    (tmp_path / "s" / "result.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"does not reproduce its constants: laws\[0\]\.exponent"):
        ff.load(tmp_path / "s")


def test_with_two_budgets_left_only_the_parabola_has_no_interval_to_judge():
    three = ff.find_optimal(GPT, "d_model", "d", "l", compute_budgets=BUDGETS[:3], seed=1, model_kwargs={"n_layer": 4})
    table = ff.Result.from_results(three.results, estimator="parabola").backtest()
    assert table["held"].isna().all() and table["low"].isna().all()  # 2 vertices: a line with no scatter
    assert (table["relative_error"].abs() < 0.1).all()
    table = three.backtest().set_index("quantity")  # each minimum's error is known from its own runs
    assert pd.notna(table.loc["params", "held"]) and table.loc["params", "low"] < table.loc["params", "predicted"]
    assert pd.isna(table.loc["loss", "held"])  # the loss law through 2 budgets still has no interval
    assert (table["relative_error"].abs() < 0.1).all()
