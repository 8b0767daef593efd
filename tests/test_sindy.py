"""The sparse-regression baseline: the pendulum's equations recovered, a model like every other, a clear message
without its extra."""

import builtins
import math

import pytest
import torch

import physode
from physode import PhysodeError, TrajectoryDataset
from physode.checkpoint import load_model, save_checkpoint
from physode.derivatives import estimate_derivatives
from physode.models.sindy import SINDy

pytest.importorskip("pysindy")


@pytest.fixture(scope="module")
def pendulum_fit():
    pendulum = physode.Pendulum()
    data = TrajectoryDataset.generate(pendulum, 64, 10.0, 0.1, seed=0)
    model = SINDy(2)
    model.fit_samples(estimate_derivatives(data))
    return pendulum, data, model


def test_sindy_recovers_the_pendulums_coefficient_on_clean_data(pendulum_fit):
    pendulum, _, model = pendulum_fit
    features = model.feature_names(["theta", "omega"])
    coefficients = dict(zip(features, model.coefficients[:, 1].tolist(), strict=True))
    g_over_l = pendulum.params.gravity / pendulum.params.length
    assert coefficients["sin(theta)"] == pytest.approx(-g_over_l, rel=1e-2)
    assert {f for f, c in coefficients.items() if c != 0.0} == {"sin(theta)"}  # sparse: nothing else
    assert dict(zip(features, model.coefficients[:, 0].tolist(), strict=True))["omega"] == pytest.approx(1.0, rel=1e-3)
    assert model.equations(["theta", "omega"])[1].startswith("d(omega)/dt = -9.8")


def test_a_fitted_sindy_model_rolls_out_and_round_trips_through_a_checkpoint(pendulum_fit, tmp_path):
    pendulum, data, model = pendulum_fit
    test = data.test
    rollout = model.rollout(test.x[:, 0], test.t)
    assert float(((rollout - test.x).norm(dim=-1) / test.x.norm(dim=-1)).median()) < 1e-2  # to 2 x t_train
    path = save_checkpoint(tmp_path / "model.pt", model, system_spec=data.system_spec)
    again = load_model(path)
    assert torch.equal(again.coefficients, model.coefficients) and again.equations() == model.equations()


def test_the_library_is_what_its_names_say():
    model = SINDy(2, degree=2, frequencies=1)
    z = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    values = dict(zip(model.feature_names(["a", "b"]), model.library(z)[0].tolist(), strict=True))
    assert values == pytest.approx({"1": 1.0, "a": 0.3, "b": -1.2, "a^2": 0.09, "a*b": -0.36, "b^2": 1.44,
                                    "sin(a)": math.sin(0.3), "sin(b)": math.sin(-1.2), "cos(a)": math.cos(0.3),
                                    "cos(b)": math.cos(-1.2)})


def test_without_pysindy_the_sindy_model_says_how_to_install_it(monkeypatch, pendulum_fit):
    real_import = builtins.__import__

    def no_pysindy(name, *args, **kwargs):
        if name == "pysindy" or name.startswith("pysindy."):
            raise ImportError("No module named 'pysindy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pysindy)
    _, data, _ = pendulum_fit
    with pytest.raises(PhysodeError, match=r'pip install "physode\[sindy\]"'):
        SINDy(2).fit_samples(estimate_derivatives(data))


def test_a_sindy_library_that_does_not_fit_the_data_is_refused(pendulum_fit):
    _, data, _ = pendulum_fit
    samples = estimate_derivatives(data)
    few = samples._replace(t=samples.t[:10], x=samples.x[:10], dxdt=samples.dxdt[:10])
    with pytest.raises(PhysodeError, match="14 terms but the data give only 10 derivative samples; lower degree"):
        SINDy(2).fit_samples(few)
    model = SINDy(2, threshold=1e3)  # larger than any coefficient of the pendulum's field
    with pytest.raises(PhysodeError, match="kept no term: threshold=1000 removed every coefficient; lower the threshold"):
        model.fit_samples(samples)
    assert not model.coefficients.any()  # nothing of the refused fit is kept
