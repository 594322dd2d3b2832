import numpy as np
import pytest
from scipy import optimize

from flops_fit import PlantedLaw, run_sweep


def test_defaults_are_chinchillas_published_fit():
    law = PlantedLaw()
    assert (law.E, law.A, law.B, law.alpha, law.beta, law.noise) == (1.69, 406.4, 410.7, 0.34, 0.28, 0.005)
    assert law.a == pytest.approx(0.28 / 0.62)
    assert law.a + law.b == pytest.approx(1.0)


@pytest.mark.parametrize("compute", [1e18, 1e21, 1e24])
def test_optimal_params_minimise_the_law_on_the_isoflop(compute):
    law = PlantedLaw()
    best = optimize.minimize_scalar(lambda x: law.loss(np.exp(x), compute / (6 * np.exp(x))),
                                    bounds=(5, 40), method="bounded", options={"xatol": 1e-10})
    assert law.optimal_params(compute) == pytest.approx(np.exp(best.x), rel=1e-4)
    assert law.optimal_tokens(compute) == pytest.approx(compute / (6 * np.exp(best.x)), rel=1e-4)


@pytest.mark.parametrize("field,value", [("alpha", 0.0), ("E", -1.0), ("noise", float("nan")), ("A", "1")])
def test_bad_law_is_refused(field, value):
    with pytest.raises(ValueError, match=f"PlantedLaw.{field}"):
        PlantedLaw(**{field: value})


def test_mock_runs_are_reproducible_and_seeded(gpt_plan):
    a = run_sweep(gpt_plan, mode="mock", seed=3)
    b = run_sweep(gpt_plan, mode="mock", seed=3)
    c = run_sweep(gpt_plan, mode="mock", seed=4)
    assert a["loss"].tolist() == b["loss"].tolist()
    assert a["loss"].tolist() != c["loss"].tolist()
    shuffled = run_sweep(gpt_plan.sample(frac=1.0, random_state=0), mode="mock", seed=3)
    assert shuffled.set_index("run_id")["loss"].loc[a["run_id"]].tolist() == a["loss"].tolist()


def test_noise_level_is_what_was_asked(gpt_plan):
    law = PlantedLaw(noise=0.02)
    results = run_sweep(gpt_plan, mode="mock", law=law, seed=0)
    clean = law.loss(results["params"].to_numpy(float), results["tokens"].to_numpy(float))
    rel = results["loss"].to_numpy() / clean - 1
    assert 0.01 < rel.std() < 0.03
    exact = run_sweep(gpt_plan, mode="mock", law=PlantedLaw(noise=0.0))
    assert np.allclose(exact["loss"], law.loss(exact["params"].to_numpy(float), exact["tokens"].to_numpy(float)))


def test_results_and_curves_frames(mock_results):
    results, curves = mock_results
    assert (results["status"] == "completed").all()
    assert (results["tokens_trained"] == results["tokens"]).all()
    assert list(curves.columns) == ["run_id", "step", "tokens", "flops", "loss", "lr"]
    assert set(curves["run_id"]) == set(results["run_id"])
    last = curves.sort_values("step").groupby("run_id").tail(1).set_index("run_id")
    assert np.allclose(last.loc[results["run_id"], "loss"], results["loss"])
    assert np.allclose(last.loc[results["run_id"], "tokens"], results["tokens"])
    # loss falls along a run (noise is small next to the fall)
    for _, curve in curves.groupby("run_id"):
        assert curve["loss"].iloc[0] > curve["loss"].iloc[-1]


def test_the_runner_alone_announces_runs(gpt_plan):
    """Mock and trained runs emit the same run_start/run_end pair, from the runner; a job only streams steps."""
    events = []
    run_sweep(gpt_plan.head(3), mode="mock", callbacks=[events.append])
    assert [e["type"] for e in events] == ["sweep_start", *["run_start", "run_end"] * 3, "sweep_end"]
    runs = events[1:-1]
    assert [e["run_id"] for e in runs[::2]] == gpt_plan["run_id"].head(3).tolist()
    assert all(e["row"]["run_id"] == e["run_id"] for e in runs[::2])  # run_start carries its plan row
    assert all(e["record"]["run_id"] == e["run_id"] and len(e["curve"]) for e in runs[1::2])  # run_end, its record
    assert events[-1]["counts"] == {"completed": 3} and events[-1]["stopped"] is False
