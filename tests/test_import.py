import subprocess
import sys

import flops_fit


def test_import_is_light():
    code = "import sys, flops_fit; print('torch' in sys.modules, 'plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_public_api_is_exported():
    for name in ["find_optimal", "plan_sweep", "run_sweep", "fit_isoflops", "fit_power_laws", "load_results",
                 "SweepPlan", "Result", "PlantedLaw"]:
        assert name in flops_fit.__all__
        assert getattr(flops_fit, name) is not None


def test_unknown_attribute_raises():
    try:
        flops_fit.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")
