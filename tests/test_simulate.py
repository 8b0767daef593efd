"""simulate(): accuracy against closed forms and scipy, per-trajectory tolerance, grids, controls, symplectic runs."""

import math

import numpy as np
import pytest
import torch
from problems import kepler_circular, pendulum_exact, pendulum_period, scipy_reference, spring_mass_exact

import physode
from physode import NBody, Pendulum, PhysodeError, SolverError, SpringMass, UnknownNameError, simulate
from physode.simulate import METHODS

T10 = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
TARGET = 1e-8  # max abs error against the references on 10-time-unit runs


@pytest.mark.parametrize("n_masses, damping", [(1, 0.0), (3, 0.1), (6, 0.0)])
def test_spring_mass_matches_the_closed_form(n_masses, damping):
    system = SpringMass(stiffness=2.0, mass=0.5, damping=damping, n_masses=n_masses)
    x0 = system.sample_initial_states(16, seed=1)
    exact = spring_mass_exact(2.0, 0.5, damping, n_masses, x0.numpy(), T10.numpy())
    got = simulate(system, x0, T10)
    assert got.dtype == torch.float64 and got.shape == (16, 101, 2 * n_masses)
    assert np.abs(got.numpy() - exact).max() < TARGET


def test_pendulum_matches_the_elliptic_closed_form_and_period():
    system = Pendulum(gravity=9.81, length=0.8)
    theta0 = np.array([0.05, 1.0, 2.0, 2.8])
    x0 = torch.tensor(np.stack([theta0, np.zeros(4)], 1))
    got = simulate(system, x0, T10).numpy()
    exact = np.stack([pendulum_exact(9.81, 0.8, th, T10.numpy()) for th in theta0])
    assert np.abs(got - exact).max() < TARGET
    for th, x in zip(theta0, x0, strict=True):  # released at rest, it is back at rest at theta0 after one period
        period = pendulum_period(9.81, 0.8, th)
        end = simulate(system, x, torch.tensor([0.0, period / 2, period], dtype=torch.float64)).numpy()
        np.testing.assert_allclose(end[1], [-th, 0.0], atol=TARGET)
        np.testing.assert_allclose(end[2], [th, 0.0], atol=TARGET)


def test_two_body_circular_orbit_matches_the_closed_form():
    for dim in (2, 3):
        system = NBody(n_bodies=2, dim=dim, masses=(1.0, 3.0), gravity=0.5)
        x0, exact = kepler_circular((1.0, 3.0), 1.2, 0.5, T10.numpy(), dim=dim)
        got = simulate(system, torch.tensor(x0), T10).numpy()
        assert np.abs(got - exact).max() < TARGET


@pytest.mark.parametrize("system", [Pendulum(damping=0.2), SpringMass(n_masses=3, damping=0.05), NBody(),
                                    NBody(dim=3, softening=0.05)], ids=["pendulum", "spring3", "nbody", "nbody3d"])
def test_matches_scipy_dop853_per_trajectory(system):
    """The reference is tighter than rtol 1e-12: on chaotic n-body runs DOP853 at 1e-12 is itself off by ~1e-9..1e-7."""
    x0 = system.sample_initial_states(6, seed=4)
    ref = scipy_reference(system, x0, T10, rtol=3e-14, atol=1e-14)
    assert np.abs(simulate(system, x0, T10).numpy() - ref).max() < TARGET


def test_per_trajectory_grids_match_one_scipy_solve_each():
    system = Pendulum()
    gen = np.random.default_rng(0)
    t = np.sort(gen.uniform(0, 10, (5, 40)), axis=1)
    t[:, 0] = gen.uniform(-1, 0, 5)  # different start times too
    x0 = system.sample_initial_states(5, seed=5)
    ref = scipy_reference(system, x0, t)
    got = simulate(system, x0, torch.tensor(t))
    assert np.abs(got.numpy() - ref).max() < TARGET


def test_zero_order_hold_controls_match_interval_by_interval_references():
    system = Pendulum(damping=0.1)
    x0 = system.sample_initial_states(3, seed=6)
    t = torch.linspace(0.0, 5.0, 26, dtype=torch.float64)
    u = torch.from_numpy(np.random.default_rng(1).uniform(-2, 2, (3, 25, 1)))
    ref = scipy_reference(system, x0, t, u=u.numpy())
    assert np.abs(simulate(system, x0, t, u).numpy() - ref).max() < TARGET
    constant = torch.tensor([[0.5], [-1.0], [2.0]], dtype=torch.float64)
    torch.testing.assert_close(simulate(system, x0, t, constant), simulate(system, x0, t, constant[:, None].expand(3, 25, 1)))


def test_every_trajectory_meets_the_tolerance_on_its_own():
    """A hard trajectory batched with many easy ones keeps the accuracy it has when solved alone.

    torchdiffeq's default norm averages the error over the batch, which loosens the tolerance of the
    hard trajectory by about sqrt(batch size); the per-trajectory norm must not.
    """
    system = Pendulum()
    t = torch.linspace(0.0, 10.0, 11, dtype=torch.float64)
    hard = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    easy = torch.tensor([[1e-3, 0.0]], dtype=torch.float64).expand(255, 2)
    ref = torch.tensor(pendulum_exact(9.81, 1.0, 3.0, t.numpy()))
    kwargs = {"method": "dopri5", "rtol": 1e-7, "atol": 1e-7}
    alone = (simulate(system, hard, t, **kwargs)[0] - ref).abs().max()
    batched = (simulate(system, torch.cat([hard, easy]), t, **kwargs)[0] - ref).abs().max()
    assert batched <= 2 * alone


def test_conservation_laws_along_nbody_runs():
    """Chaotic 4-body runs with close encounters: energy to 5e-8 relative, momenta far tighter."""
    system = NBody(n_bodies=4, dim=3, masses=(1.0, 2.0, 0.5, 1.5))
    x = simulate(system, system.sample_initial_states(8, seed=8), T10)
    energy = system.energy(x)
    assert ((energy - energy[:, :1]).abs() / energy[:, :1].abs()).max() < 5e-8
    assert (system.momentum(x) - system.momentum(x[:, :1])).abs().max() < 1e-10
    assert (system.angular_momentum(x) - system.angular_momentum(x[:, :1])).abs().max() < 2e-8


def _kepler_error(method, step_size, periods=2.0):
    system = NBody(n_bodies=2, masses=(1.0, 1.0))
    x0, _ = kepler_circular((1.0, 1.0), 1.0, 1.0, np.array([0.0]))
    period = 2 * math.pi / math.sqrt(2.0)
    t = torch.tensor([0.0, periods * period], dtype=torch.float64)
    _, exact = kepler_circular((1.0, 1.0), 1.0, 1.0, t.numpy())
    got = simulate(system, torch.tensor(x0), t, method=method, step_size=step_size)
    return float(np.abs(got.numpy() - exact).max())


@pytest.mark.parametrize("method, order", [("leapfrog", 2), ("yoshida4", 4), ("rk4", 4), ("midpoint", 2)])
def test_fixed_step_methods_converge_at_their_order(method, order):
    steps = np.array([0.08, 0.04, 0.02, 0.01])
    errors = np.array([_kepler_error(method, h) for h in steps])
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.3, (slope, errors)


@pytest.mark.parametrize("method, bound", [("leapfrog", 2e-3), ("yoshida4", 1e-4)])
def test_symplectic_energy_error_stays_bounded_on_long_runs(method, bound):
    """An eccentric Kepler orbit over 100 periods: the energy error oscillates but does not grow."""
    system = NBody(n_bodies=2, masses=(1.0, 1.0))
    x0 = torch.tensor([0.5, 0.0, -0.5, 0.0, 0.0, 0.9, 0.0, -0.9], dtype=torch.float64)  # eccentricity about 0.6
    period = 2 * math.pi * (1 / (2 - 2 * 0.81)) ** 1.5 / math.sqrt(2)  # a = 1/(2/r - v^2/GM) for the relative orbit
    t = torch.linspace(0.0, 100 * period, 1001, dtype=torch.float64)
    x = simulate(system, x0, t, method=method, step_size=period / 200)
    drift = ((system.energy(x) - system.energy(x0)) / system.energy(x0)).abs()
    first, last = drift[:200].max(), drift[-200:].max()
    assert last < bound and last < 1.5 * first
    adaptive = simulate(system, x0, t, method="dopri5", rtol=1e-6, atol=1e-6)  # a non-symplectic method drifts
    adaptive_drift = ((system.energy(adaptive) - system.energy(x0)) / system.energy(x0)).abs()
    assert adaptive_drift[-200:].max() > 3 * adaptive_drift[:200].max()


def test_one_state_gives_one_trajectory():
    system = SpringMass()
    x0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    got = simulate(system, x0, T10)
    assert got.shape == (101, 2)
    torch.testing.assert_close(got, simulate(system, x0[None], T10)[0])
    assert simulate(system, [1.0, 0.0], [0.0, 1.0]).shape == (2, 2)


def test_batching_does_not_change_results_beyond_tolerance():
    system = Pendulum()
    x0 = system.sample_initial_states(40, seed=9)
    whole = simulate(system, x0, T10)
    pieces = simulate(system, x0, T10, batch_size=7, progress=True)
    assert (whole - pieces).abs().max() < 1e-9


def test_results_are_ordinary_tensors_and_gradients_flow_when_asked_for():
    # without grad anywhere the solve runs in inference mode; what comes back must still be an ordinary tensor
    system = SpringMass()
    y = simulate(system, [[1.0, 0.0]], [0.0, 1.0])
    assert not y.is_inference()
    y[:, 0] += 1.0  # in place, which an inference tensor refuses outside inference mode
    weight = torch.ones(2, dtype=torch.float64, requires_grad=True)
    ((y[:, 1] * weight).sum()).backward()  # usable as data in a differentiated loss
    # x0 that requires grad: one unit mass between two unit springs, w = sqrt(2), q(t) = q0 cos wt + v0 sin(wt) / w
    x0 = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    simulate(system, x0, [0.0, 1.0])[0, 1, 0].backward()
    w = math.sqrt(2.0)
    np.testing.assert_allclose(x0.grad[0].numpy(), [math.cos(w), math.sin(w) / w], atol=1e-9)
    # a system that is a module with trainable parameters: gradients reach them
    class Scaled(torch.nn.Module):
        state_dim, control_dim = 2, 0

        def __init__(self):
            super().__init__()
            self.rate = torch.nn.Parameter(torch.tensor(-0.5, dtype=torch.float64))

        def vector_field(self, t, x, u=None):
            return self.rate * x

    scaled = Scaled()
    simulate(scaled, [[1.0, 2.0]], [0.0, 2.0])[0, 1, 0].backward()  # x(2) = e^(2 rate), d/d rate = 2 e^(2 rate)
    assert scaled.rate.grad == pytest.approx(2 * math.exp(-1.0), abs=1e-9)


def test_bad_method_and_options():
    system = Pendulum()
    x0 = system.sample_initial_states(2)
    with pytest.raises(UnknownNameError, match="dopri8"):
        simulate(system, x0, T10, method="rk45")
    with pytest.raises(PhysodeError, match="step_size"):
        simulate(system, x0, T10, method="rk4")
    with pytest.raises(PhysodeError, match="damping=0"):
        simulate(Pendulum(damping=0.1), x0, T10, method="leapfrog", step_size=0.01)
    with pytest.raises(SolverError, match="max_steps"):
        simulate(system, x0, T10, max_steps=1)
    assert set(METHODS) >= {"dopri8", "dopri5", "rk4", "leapfrog", "yoshida4"}


def test_progress_bar_counts_every_output_interval(capsys):
    system = Pendulum()
    x0 = system.sample_initial_states(5, seed=1)
    simulate(system, x0, T10, batch_size=2, progress=True)
    simulate(system, x0, T10, method="leapfrog", step_size=0.05, progress=True)
    err = capsys.readouterr().err
    assert "300/300" in err and "100/100" in err


def test_thousands_of_many_body_trajectories_generate_in_one_call():
    """2000 trajectories of 64 bodies: one batched call, bound starts, energy kept by the short RK4 run."""
    system = physode.NBody(n_bodies=64, softening=0.05)
    data = physode.TrajectoryDataset.generate(system, 2000, t_end=0.02, dt=0.01, seed=1, method="rk4",
                                              step_size=0.005, device="cpu")
    assert data.x.shape == (2000, 3, 256) and data.x.dtype == torch.float64
    energy = system.energy(data.x_clean)
    assert bool((energy < 0).all())
    assert float(((energy[:, -1] - energy[:, 0]) / energy[:, 0]).abs().max()) < 1e-6
    momentum = system.momentum(data.x_clean).norm(dim=-1)
    assert float(momentum.max()) < 1e-10


def test_a_gradient_with_respect_to_the_times_alone_flows():
    """d x(t_end) / d t_end is the field at the final state (it was silently cut off by inference mode)."""
    system = Pendulum()
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    y = simulate(system, torch.tensor([[0.5, 0.0]], dtype=torch.float64), t)
    assert y.requires_grad
    y[0, -1, 0].backward()
    expected = system.vector_field(1.0, y[0, -1].detach())[0]  # d theta / dt = omega at t = 1
    assert abs(float(t.grad[-1]) - float(expected)) < 1e-8
