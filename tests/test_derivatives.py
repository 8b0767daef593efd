"""Derivative estimates against true fields, and derivative matching (collocation) against known answers."""

import numpy as np
import pytest
import torch

import physode
from physode import PhysodeError, TrajectoryDataset
from physode.collocation import field_samples, fit_field
from physode.derivatives import estimate_derivatives, stencil_derivatives, stencil_weights, step_differences


def _relative(estimate, truth):
    return float((estimate - truth).norm() / truth.norm())


def test_stencil_weights_are_the_classic_ones():
    assert np.allclose(stencil_weights([-1, 0, 1]), [-0.5, 0, 0.5])
    assert np.allclose(stencil_weights([-2, -1, 0, 1, 2]), np.array([1, -8, 0, 8, -1]) / 12)
    assert np.allclose(stencil_weights([0, 1, 2]), [-1.5, 2, -0.5])  # one-sided, second order


@pytest.mark.parametrize("points", [5, 7])
def test_the_stencils_order_fitted_by_regression_on_dt_is_points_minus_one_everywhere(points):
    """x = sin(3t) + cos(t): the largest error, ends included, falls as dt^(points - 1)."""
    steps = np.array([0.2, 0.1, 0.05, 0.025])
    errors = []
    for dt in steps:
        t = torch.arange(0, 4 + 1e-12, dt, dtype=torch.float64)
        x = (torch.sin(3 * t) + torch.cos(t))[None, :, None]
        exact = 3 * torch.cos(3 * t) - torch.sin(t)
        errors.append(float((stencil_derivatives(x, dt, points)[0, :, 0] - exact).abs().max()))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert points - 1.4 < slope < points - 1 + 0.6


def test_estimates_on_simulated_data_match_the_true_field():
    pendulum = physode.Pendulum()
    cases = {  # method chosen by "auto" -> relative error bound (norm over all samples)
        "clean": ({}, 3e-3),
        "irregular": ({"irregular": True}, 5e-2),  # quintic interpolation; a few close time pairs dominate the norm
        "noisy": ({"noise_std": 0.01}, 8e-2),  # smoothing spline with GCV, 1% noise
        "controlled": ({"controls": "random"}, 1e-2),  # midpoints, second order, the interval's own control
    }
    for name, (options, bound) in cases.items():
        data = TrajectoryDataset.generate(pendulum, 32, 10.0, 0.1, seed=1, **options)
        samples = estimate_derivatives(data)
        truth = pendulum.vector_field(samples.t, samples.x, samples.u)
        assert _relative(samples.dxdt, truth) < bound, name
        assert bool((samples.t <= data.t_train).all()), name  # only what the trainer trains on
    clean = TrajectoryDataset.generate(pendulum, 32, 10.0, 0.1, seed=1)
    stencil = estimate_derivatives(clean, "stencil")
    spline = estimate_derivatives(clean, "spline")
    stencil_error = _relative(stencil.dxdt, pendulum.vector_field(stencil.t, stencil.x))
    assert stencil_error < _relative(spline.dxdt, pendulum.vector_field(spline.t, spline.x)) / 3  # why "auto" takes it
    assert len(stencil.t) > 0.9 * len(spline.t)  # samples the grid does not resolve are left out: only a few


def test_recorded_data_of_different_lengths_take_the_smoothing_spline():
    pendulum = physode.Pendulum()
    data = TrajectoryDataset.generate(pendulum, 24, 10.0, 0.1, seed=2)
    recorded = TrajectoryDataset.from_arrays(data.t, [data.x[i, : 60 + 2 * i] for i in range(24)])
    samples = estimate_derivatives(recorded)
    assert _relative(samples.dxdt, pendulum.vector_field(0.0, samples.x)) < 2e-2


def test_step_differences_are_the_one_step_pairs_of_a_step_model():
    data = TrajectoryDataset.generate(physode.Pendulum(), 8, 4.0, 0.1, seed=0)
    pairs = step_differences(data, 0.1)
    train = data.train
    assert torch.allclose(pairs.x[0] + 0.1 * pairs.dxdt[0], train.x[0, 1])
    with pytest.raises(PhysodeError, match="dt=0.05.*build the model with the data's step"):
        step_differences(data, 0.05)


def test_too_little_data_for_derivatives_says_what_to_do():
    short = TrajectoryDataset.generate(physode.Pendulum(), 8, 0.4, 0.1, seed=0)  # 3 observations up to t_train
    with pytest.raises(PhysodeError, match="7-point stencil needs at least 7 observations"):
        estimate_derivatives(short, "stencil")
    with pytest.raises(PhysodeError, match="spline needs 6"):
        estimate_derivatives(short, "spline")
    with pytest.raises(PhysodeError, match="derivative method"):
        estimate_derivatives(short, "magic")


def test_derivative_matching_recovers_a_linear_field():
    """dx/dt = A x from clean data: the fitted field is A x to well under a percent, in seconds, with no ODE solve."""
    a = torch.tensor([[-0.1, 1.0], [-2.0, -0.3]], dtype=torch.float64)
    system = physode.ODESystem(lambda t, x, u: x @ a.T, state_names=("p", "q"), initial_states=[(-1, 1), (-1, 1)],
                               name="linear_test")
    data = TrajectoryDataset.generate(system, 32, 8.0, 0.1, seed=0)
    torch.manual_seed(0)
    model = physode.build_model("node", data, hidden=32)
    seen = data.train.x[data.train.train_time_mask]
    model.set_normalization(seen.mean(0), seen.std(0))
    losses = fit_field(model, field_samples(model, data), steps=1500, lr=1e-2)
    states = data.test.x[data.test.train_time_mask]
    with torch.no_grad():
        error = _relative(model.vector_field(0.0, states), states @ a.T)
    assert error < 5e-3 and losses[-1] < losses[0] / 100


def test_a_step_model_fitted_to_one_step_pairs_predicts_the_next_observation():
    data = TrajectoryDataset.generate(physode.Pendulum(), 32, 6.0, 0.1, seed=0)
    torch.manual_seed(0)
    model = physode.build_model("resnet", data, hidden=32)
    seen = data.train.x[data.train.train_time_mask]
    model.set_normalization(seen.mean(0), seen.std(0))
    fit_field(model, field_samples(model, data), steps=1500, lr=1e-2)
    test = data.test
    with torch.no_grad():
        step = model.step(test.x[:, :-1].float()).double()
    assert _relative(step - test.x[:, :-1], test.x[:, 1:] - test.x[:, :-1]) < 2e-2  # the increments, to 2%


def test_a_noise_level_that_leaves_nothing_is_refused_and_one_that_leaves_a_signal_is_not(tmp_path):
    drowned = TrajectoryDataset.generate(physode.Pendulum(), 16, 10.0, 0.1, seed=0, noise_std=10.0)
    with pytest.raises(PhysodeError, match=r"too noisy for derivatives: .*theta \d+%, omega \d+%; at least 20%"):
        estimate_derivatives(drowned)
    model = physode.build_model("node", drowned, hidden=8)
    with pytest.raises(PhysodeError, match="too noisy .* or train without it"):
        physode.fit(model, drowned, physode.TrainConfig(steps=2), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
    noisy = TrajectoryDataset.generate(physode.Pendulum(), 16, 10.0, 0.1, seed=0, noise_std=0.3)
    assert len(estimate_derivatives(noisy).t) > 500  # noise of a third of the signal still leaves one
