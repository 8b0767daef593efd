"""Van der Pol (and the stiff solver), Duffing, Lorenz-63 and the largest Lyapunov exponent, against closed forms,
scipy at tight tolerance, invariants and published values."""

import math

import numpy as np
import pytest
import torch
from problems import scipy_reference, spring_mass_exact
from scipy.integrate import solve_ivp

from physode import PhysodeError, SolverError, SpringMass, UnknownNameError, simulate
from physode.lyapunov import finite_time_lyapunov_exponents, largest_lyapunov_exponent
from physode.simulate import METHODS
from physode.systems.base import System
from physode.systems.duffing import Duffing
from physode.systems.lorenz import Lorenz
from physode.systems.van_der_pol import VanDerPol

#: The Van der Pol limit cycle at mu = 1 (Hairer, Norsett & Wanner, Solving ODEs I): period and amplitude max x.
VDP_PERIOD = 6.6632868593231301896996820305
VDP_AMPLITUDE = 2.00861986087484313650940188
#: Largest Lyapunov exponent of Lorenz-63 at the classic parameters (Sprott 2003; Viswanath 1998: 0.905630...).
LORENZ_EXPONENT = 0.9056
CHAOTIC_DUFFING = {"alpha": -1.0, "beta": 1.0, "delta": 0.3, "gamma": 0.5, "omega": 1.2}


def _crossings(system, traj, t, comp, sign, t_min):
    """Where component ``comp`` of ``traj: (N, T, D)`` crosses 0 in direction ``sign`` after ``t_min``:
    ``(trajectory index, time, state)``, each crossing refined by Newton steps on short batched solves."""
    c = traj[..., comp] * sign
    i, k = torch.nonzero((c[:, :-1] < 0) & (c[:, 1:] >= 0), as_tuple=True)
    keep = t[k] >= t_min
    i, k = i[keep], k[keep]
    start, x = t[k], traj[i, k]
    step = torch.full_like(start, 1e-3)
    for _ in range(6):
        y = simulate(system, x, torch.stack([start, start + step], 1))[:, 1]
        step = step - y[:, comp] / system.vector_field(0.0, y)[:, comp]
    return i, start + step, simulate(system, x, torch.stack([start, start + step], 1))[:, 1]


# ---------------------------------------------------------------- Van der Pol


def test_van_der_pol_field_is_the_equation_batched_in_both_dtypes():
    system = VanDerPol(mu=2.5)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-3, 3, (4, 5, 2)))
    u = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (4, 5, 1)))
    q, v = x[..., 0].numpy(), x[..., 1].numpy()
    expected = np.stack([v, 2.5 * (1 - q**2) * v - q + u[..., 0].numpy()], -1)
    np.testing.assert_allclose(system.vector_field(0.0, x, u).numpy(), expected, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(system.vector_field(torch.zeros(4, 5), x).numpy()[..., 1], 2.5 * (1 - q**2) * v - q, rtol=1e-14)
    got32 = system.vector_field(0.0, x.float(), u.float())
    assert got32.dtype == torch.float32 and np.abs(got32.numpy() - expected).max() < 1e-4
    assert system.state_dim == 2 and system.control_dim == 1 and not system.conservative and VanDerPol(mu=0.0).conservative
    with pytest.raises(NotImplementedError):
        system.energy(x)
    x0 = system.sample_initial_states(500, seed=3)
    assert x0.dtype == torch.float64 and x0.shape == (500, 2) and torch.equal(x0, system.sample_initial_states(500, seed=3))
    inside = (x0.abs() < 1.0).all(1).any() and (x0[:, 0].abs() > 2.1).any()  # starts inside and outside the cycle
    assert inside and float(x0.abs().max()) <= 3.0
    with pytest.raises(PhysodeError, match="mu"):
        VanDerPol(mu=-1.0)


def test_van_der_pol_limit_cycle_has_the_published_period_and_amplitude():
    """From inside and from outside the cycle: upward zero crossings of x give the period, the maxima of x the
    amplitude, both refined by Newton steps on the solution itself (no interpolation error)."""
    system = VanDerPol(mu=1.0)
    t = torch.arange(0.0, 64.0 + 1e-9, 0.25, dtype=torch.float64)
    x = simulate(system, torch.tensor([[0.1, 0.0], [3.0, 3.0]], dtype=torch.float64), t)
    which, times, _ = _crossings(system, x, t, 0, 1.0, 30.0)
    top, _, peaks = _crossings(system, x, t, 1, -1.0, 30.0)  # v from + to -: the maxima of x
    for j in range(2):
        tj = times[which == j]
        assert len(tj) >= 4
        period = float(tj[-1] - tj[0]) / (len(tj) - 1)
        assert abs(period - VDP_PERIOD) < 1e-10
        assert float((tj.diff() - VDP_PERIOD).abs().max()) < 1e-10  # settled: every cycle, not only their mean
        assert float((peaks[top == j, 0] - VDP_AMPLITUDE).abs().max()) < 1e-10


def _vdp_numpy(mu):
    def field(t, y):
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    def jac(t, y):
        return [[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1, mu * (1 - y[0] ** 2)]]

    return field, jac


def test_stiff_van_der_pol_with_radau_matches_scipy_at_tight_tolerance():
    """mu = 1000, per-trajectory grids: a start on the slow manifold shortly before a jump, and one off it (a fast
    initial transient), over a fast jump between slow branches. The reference is scipy's Radau with the
    hand-written field and Jacobian at 1e-12; radau here runs at its default 1e-10 with the autograd Jacobian."""
    mu = 1000.0
    system = VanDerPol(mu=mu)
    assert system.stiff and not VanDerPol(mu=100.0).stiff
    x0 = np.array([[1.2, 1.2 / (mu * (1 - 1.44))], [0.5, 1.0]])
    t = np.stack([np.linspace(0.0, 100.0, 11), np.sort(np.r_[0.0, np.random.default_rng(0).uniform(0.0, 100.0, 10)])])
    got = simulate(system, torch.from_numpy(x0), torch.from_numpy(t), method="radau").numpy()
    field, jac = _vdp_numpy(mu)
    for i in range(2):
        ref = solve_ivp(field, (t[i, 0], t[i, -1]), x0[i], method="Radau", jac=jac, t_eval=t[i], rtol=1e-12, atol=1e-12)
        assert ref.status == 0
        assert np.abs(got[i] - ref.y.T).max() < 1e-8
    assert got[0, -1, 0] < -1.0  # the first start has jumped to the other branch: the hard part is in the window


class _CountingVanDerPol(VanDerPol):
    calls = 0

    def vector_field(self, t, x, u=None):
        type(self).calls += 1
        return super().vector_field(t, x, u)


@pytest.mark.parametrize("method, options", [("dopri8", {}), ("dopri5", {"rtol": 1e-6, "atol": 1e-6}),
                                             ("rk4", {"step_size": 0.01}), ("leapfrog", {"step_size": 0.01})])
def test_explicit_methods_on_a_stiff_system_are_refused_before_integrating(method, options):
    system = _CountingVanDerPol(mu=1000.0)
    _CountingVanDerPol.calls = 0
    with pytest.raises(PhysodeError, match=r'stiff.*method="radau"') as info:
        simulate(system, [[2.0, 0.0]], [0.0, 3000.0], method=method, **options)
    assert "\n" not in str(info.value) and "VanDerPol(mu=1000.0)" in str(info.value)
    assert _CountingVanDerPol.calls == 0  # refused at once: not one field evaluation


def test_radau_honours_its_tolerance_on_a_closed_form_and_holds_controls():
    system = SpringMass(stiffness=2.0, mass=0.5, damping=0.3, n_masses=2)
    x0 = system.sample_initial_states(2, seed=2)
    t = torch.linspace(0.0, 5.0, 21, dtype=torch.float64)
    exact = spring_mass_exact(2.0, 0.5, 0.3, 2, x0.numpy(), t.numpy())
    errors = [np.abs(simulate(system, x0, t, method="radau", rtol=tol, atol=tol).numpy() - exact).max() for tol in (1e-5, 1e-9)]
    assert errors[1] < 1e-8 < errors[0] < 1e-3  # tighter tolerance, smaller error: rtol/atol are used
    # zero-order-hold controls: one solve per interval, against scipy's DOP853 interval by interval
    vdp = VanDerPol(mu=1.0)
    x0 = vdp.sample_initial_states(2, seed=1)
    t = torch.linspace(0.0, 4.0, 9, dtype=torch.float64)
    u = torch.from_numpy(np.random.default_rng(4).uniform(-1, 1, (2, 8, 1)))
    assert np.abs(simulate(vdp, x0, t, u, method="radau").numpy() - scipy_reference(vdp, x0, t, u=u.numpy())).max() < 1e-8
    constant = torch.tensor([[0.5], [-0.7]], dtype=torch.float64)
    held = simulate(vdp, x0, t, constant, method="radau")
    assert np.abs(held.numpy() - scipy_reference(vdp, x0, t, u=constant[:, None].expand(2, 8, 1).numpy())).max() < 1e-8
    # what an env's step asks for: a fixed step_size (ignored), one interval, a constant control, a single state
    one = simulate(vdp, x0[0], [0.0, 0.05], [0.3], method="radau", step_size=0.05, rtol=1e-8, atol=1e-8)
    ref = scipy_reference(vdp, x0[:1], [0.0, 0.05], u=np.full((1, 1, 1), 0.3))[0]
    assert one.shape == (2, 2) and np.abs(one.numpy() - ref).max() < 1e-8


def test_radau_failures_are_solver_errors_and_gradients_are_refused():
    softening = Duffing(alpha=1.0, beta=-1.0)  # beyond the barrier at |x| = 1 the state escapes in finite time
    with pytest.raises(SolverError, match="radau"):
        simulate(softening, [[1.5, 1.0]], [0.0, 10.0], method="radau", rtol=1e-3, atol=1e-3)  # loose: it fails sooner
    with pytest.raises(SolverError, match="max_steps"):
        simulate(VanDerPol(mu=1000.0), [[2.0, 0.0]], [0.0, 3000.0], method="radau", max_steps=5)
    x0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64, requires_grad=True)
    with pytest.raises(PhysodeError, match="gradients"):
        simulate(VanDerPol(), x0, [0.0, 1.0], method="radau")
    assert "radau" in METHODS


def test_an_env_steps_with_radau():
    import physode.envs  # noqa: F401  (the env classes)
    from physode.envs import PendulumEnv

    steps = []
    for integrator in ("radau", "dopri8"):
        env = PendulumEnv(integrator=integrator, rtol=1e-10, atol=1e-10, damping=0.2, device="cpu")
        obs, _ = env.reset(seed=3)
        for action in (0.5, -1.0, 2.0):
            obs, *_ = env.step(np.array([action], dtype=np.float32))
        steps.append(obs)
    np.testing.assert_allclose(steps[0], steps[1], atol=1e-6)  # float32 observations


# ---------------------------------------------------------------- Duffing


def _driven_linear(alpha, delta, gamma, omega, force, x0, t):
    """x'' + delta x' + alpha x = gamma cos(omega t) + force from x0 = (x, v) at t[0]: steady state plus transient."""
    amp = gamma / math.hypot(alpha - omega**2, delta * omega)
    phase = math.atan2(delta * omega, alpha - omega**2)
    wd = math.sqrt(alpha - delta**2 / 4)
    s = t - t[0]

    def particular(tt):
        return amp * np.cos(omega * tt - phase) + force / alpha, -amp * omega * np.sin(omega * tt - phase)

    xp0, vp0 = particular(t[0])
    a = x0[0] - xp0
    b = (x0[1] - vp0 + delta / 2 * a) / wd
    decay = np.exp(-delta / 2 * s)
    xh = decay * (a * np.cos(wd * s) + b * np.sin(wd * s))
    vh = decay * ((-delta / 2 * a + b * wd) * np.cos(wd * s) + (-delta / 2 * b - a * wd) * np.sin(wd * s))
    xp, vp = particular(t)
    return np.stack([xp + xh, vp + vh], -1)


def test_duffing_without_the_cubic_term_is_the_driven_damped_oscillator():
    """beta = 0: the closed form, with a constant extra force u too, on a shared grid and on irregular
    per-trajectory grids that start at different times (the forcing's phase is per trajectory)."""
    params = {"alpha": 2.0, "beta": 0.0, "delta": 0.3, "gamma": 0.7, "omega": 1.3}
    system = Duffing(**params)
    assert system.time_dependent and not system.conservative and not Duffing().time_dependent
    x0 = system.sample_initial_states(4, seed=0)
    force = np.array([0.0, 0.4, -0.8, 1.5])
    u = torch.from_numpy(force[:, None])
    shared = np.linspace(0.0, 20.0, 81)
    got = simulate(system, x0, torch.from_numpy(shared), u).numpy()
    gen = np.random.default_rng(1)
    own = np.sort(gen.uniform(0.0, 20.0, (4, 30)), axis=1) + gen.uniform(-3.0, 3.0, (4, 1))
    got_own = simulate(system, x0, torch.from_numpy(own), u).numpy()
    for i in range(4):
        exact = _driven_linear(2.0, 0.3, 0.7, 1.3, force[i], x0[i].numpy(), shared)
        assert np.abs(got[i] - exact).max() < 1e-9
        exact_own = _driven_linear(2.0, 0.3, 0.7, 1.3, force[i], x0[i].numpy(), own[i])
        assert np.abs(got_own[i] - exact_own).max() < 1e-9


def test_duffing_unforced_and_undamped_conserves_its_energy():
    system = Duffing(alpha=-1.0, beta=1.0)  # the double well: trajectories in one well and over the barrier
    assert system.conservative and not system.time_dependent
    x0 = system.sample_initial_states(16, seed=5)
    energy0 = system.energy(x0)
    assert bool((energy0 < 0).any() and (energy0 > 0).any())
    t = torch.linspace(0.0, 50.0, 101, dtype=torch.float64)
    drift = (system.energy(simulate(system, x0, t)) - energy0[:, None]).abs().max()
    assert float(drift) < 1e-11
    x = simulate(system, x0, t, method="yoshida4", step_size=0.01)  # symplectic: bounded energy error
    assert float((system.energy(x) - energy0[:, None]).abs().max()) < 1e-6
    q, v = x0[:, 0].numpy(), x0[:, 1].numpy()
    np.testing.assert_allclose(energy0.numpy(), v**2 / 2 - q**2 / 2 + q**4 / 4, rtol=1e-14)


def test_forced_chaotic_duffing_matches_scipy_dop853():
    system = Duffing(**CHAOTIC_DUFFING)
    x0 = system.sample_initial_states(6, seed=2)
    t = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
    ref = scipy_reference(system, x0, t, rtol=1e-12, atol=1e-12)  # the field at scipy's float times
    assert np.abs(simulate(system, x0, t).numpy() - ref).max() < 1e-8
    # and the field itself, for scalar, 0-d and per-trajectory times
    x = x0.numpy()
    forced = -0.3 * x[:, 1] + x[:, 0] - x[:, 0] ** 3 + 0.5 * np.cos(1.2 * 2.0)
    np.testing.assert_allclose(system.vector_field(2.0, x0)[:, 1].numpy(), forced, rtol=1e-13)
    np.testing.assert_allclose(system.vector_field(torch.tensor(2.0), x0)[:, 1].numpy(), forced, rtol=1e-13)
    times = torch.linspace(0.0, 5.0, 6, dtype=torch.float64)
    per = system.vector_field(times, x0)[:, 1].numpy()
    np.testing.assert_allclose(per, forced - 0.5 * np.cos(1.2 * 2.0) + 0.5 * np.cos(1.2 * times.numpy()), rtol=1e-13)
    grid = system.vector_field(times[None, :].expand(3, 6), x0[None].expand(3, 6, 2).float())
    assert grid.shape == (3, 6, 2) and grid.dtype == torch.float32 and np.abs(grid[1, :, 1].numpy() - per).max() < 1e-5


def test_forced_duffing_on_irregular_per_trajectory_grids_equals_the_shared_grid_at_shared_times():
    system = Duffing(**CHAOTIC_DUFFING)
    x0 = system.sample_initial_states(5, seed=7)
    shared = np.linspace(0.0, 8.0, 17)
    gen = np.random.default_rng(2)
    own = np.stack([np.sort(np.r_[shared, gen.uniform(0.0, 8.0, 13)]) for _ in range(5)])  # extra times, different per row
    on_shared = simulate(system, x0, torch.from_numpy(shared)).numpy()
    on_own = simulate(system, x0, torch.from_numpy(own)).numpy()
    for i in range(5):
        at = np.searchsorted(own[i], shared)
        assert np.abs(on_own[i, at] - on_shared[i]).max() < 1e-9


@pytest.mark.parametrize("method, order", [("leapfrog", 2), ("yoshida4", 4)])
def test_symplectic_methods_keep_their_order_on_the_forced_duffing(method, order):
    """The forcing's time drifts with the positions: each kick sees the time the drifts have reached (a kick at
    the step's start time would make the forced run first order)."""
    system = Duffing(alpha=1.0, beta=0.5, gamma=0.8, omega=1.7)
    x0 = torch.tensor([[0.7, -0.2]], dtype=torch.float64)
    t = torch.tensor([0.3, 3.3], dtype=torch.float64)
    ref = scipy_reference(system, x0, t)[0, -1]
    steps = np.array([0.1, 0.05, 0.025])
    errors = [np.abs(simulate(system, x0, t, method=method, step_size=h)[0, -1].numpy() - ref).max() for h in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.3, (slope, errors)


def test_duffing_parameters_and_initial_states():
    assert Duffing(alpha=np.float32(-1.0), beta=np.int64(2)).params.alpha == -1.0
    for bad, word in [({"alpha": float("nan")}, "alpha"), ({"beta": "hard"}, "beta"), ({"delta": -0.1}, "delta"),
                      ({"omega": 0.0}, "omega"), ({"gamma": True}, "gamma")]:
        with pytest.raises(PhysodeError, match=word):
            Duffing(**bad)
    hard = Duffing(alpha=1.0, beta=1.0).sample_initial_states(200, seed=1)
    assert float(hard.abs().max()) <= 2.0 and hard.dtype == torch.float64
    soft = Duffing(alpha=2.0, beta=-0.5)  # barrier at |x| = 2, energy 2
    x0 = soft.sample_initial_states(300, seed=4)
    assert x0.shape == (300, 2) and bool((soft.energy(x0) < 0.9 * 2.0).all() and (x0[:, 0].abs() < 2.0).all())
    with pytest.raises(PhysodeError, match="no bounded motion"):
        Duffing(alpha=-1.0, beta=-1.0).sample_initial_states(3)


# ---------------------------------------------------------------- Lorenz-63


def test_lorenz_field_is_the_equation():
    system = Lorenz(sigma=9.0, rho=30.0, beta=2.5)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 10, (3, 4, 3)))
    a, b, c = x.unbind(-1)
    expected = torch.stack([9.0 * (b - a), a * (30.0 - c) - b, a * b - 2.5 * c], -1)
    torch.testing.assert_close(system.vector_field(1.5, x), expected, rtol=1e-14, atol=1e-12)
    assert system.vector_field(0.0, x.float()).dtype == torch.float32
    assert system.state_dim == 3 and system.control_dim == 0 and not system.time_dependent and not system.stiff
    assert Lorenz().lyapunov_exponent == LORENZ_EXPONENT and system.lyapunov_exponent is None
    with pytest.raises(PhysodeError, match="rho"):
        Lorenz(rho=0.0)
    with pytest.raises(PhysodeError, match="last dimension 3"):
        system.vector_field(0.0, torch.zeros(2, 2))


def test_lorenz_matches_scipy_over_a_short_horizon():
    system = Lorenz()
    x0 = system.sample_initial_states(4, seed=1)
    t = torch.linspace(0.0, 4.0, 41, dtype=torch.float64)
    ref = scipy_reference(system, x0, t, rtol=1e-13, atol=1e-13)
    assert np.abs(simulate(system, x0, t).numpy() - ref).max() < 1e-8


def test_lorenz_samples_and_trajectories_stay_on_the_bounded_attractor():
    """``V = x^2 + y^2 + (z - sigma - rho)^2`` decreases outside an ellipsoid, so the ball ``V <= R^2`` with
    ``R^2 = beta^2 (sigma + rho)^2 / (4 (beta - 1))`` (beta >= 2, sigma >= 1) is invariant and absorbing. Samples
    lie in it and stay in it; nearly every run visits both wings within 10 time units, and none rests at a fixed point."""
    system = Lorenz()
    sigma, rho, beta = 10.0, 28.0, 8.0 / 3.0
    radius2 = beta**2 * (sigma + rho) ** 2 / (4 * (beta - 1))
    x0 = system.sample_initial_states(32, seed=3)
    assert torch.equal(x0, system.sample_initial_states(32, seed=3))
    assert not torch.equal(x0, system.sample_initial_states(32, seed=4))
    x = simulate(system, x0, torch.linspace(0.0, 10.0, 201, dtype=torch.float64), method="dopri5", rtol=1e-7, atol=1e-7)
    v = x[..., 0] ** 2 + x[..., 1] ** 2 + (x[..., 2] - sigma - rho) ** 2
    assert float(v.max()) <= radius2
    assert float(((x[..., 0] > 5).any(1) & (x[..., 0] < -5).any(1)).double().mean()) > 0.9  # nearly every run, both wings
    speed = system.vector_field(0.0, x).norm(dim=-1)
    assert float(speed.mean(1).min()) > 10.0  # moving: not resting at a fixed point (0 or (+-8.49, +-8.49, 27))


# ---------------------------------------------------------------- Lyapunov exponents


def test_lorenz_largest_lyapunov_exponent_matches_the_published_value():
    system = Lorenz()
    x0 = system.sample_initial_states(64, seed=0)
    estimate = largest_lyapunov_exponent(system, x0, t_end=60.0, transient=10.0, seed=0)
    assert abs(estimate / LORENZ_EXPONENT - 1) < 0.02, estimate


class _Diagonal(System):
    name = "diagonal"
    state_names = ("a", "b", "c")
    rates = torch.tensor([0.3, -0.5, -1.2], dtype=torch.float64)

    def vector_field(self, t, x, u=None):
        return x * self.rates.to(x.dtype)


def test_linear_systems_have_their_known_exponents():
    """dx/dt = diag(0.3, -0.5, -1.2) x: the largest rate, 0.3. A damped oscillator x'' = -w0^2 x - c x': -c/2, exactly
    over whole damped periods (there e^{A t} = e^{-c t / 2} I, whatever the tangent)."""
    diagonal = finite_time_lyapunov_exponents(_Diagonal(), [[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], t_end=40.0, transient=20.0)
    np.testing.assert_allclose(diagonal.numpy(), 0.3, atol=1e-9)
    oscillator = SpringMass(stiffness=1.0, mass=1.0, damping=0.2)  # w0^2 = 2 k / m
    period = 2 * math.pi / math.sqrt(2.0 - 0.01)
    x0 = oscillator.sample_initial_states(3, seed=0)
    rate = largest_lyapunov_exponent(oscillator, x0, t_end=11 * period, transient=period, renormalize_every=0.7, rtol=1e-10,
                                     atol=1e-12)
    assert abs(rate + 0.1) < 1e-8


def test_the_two_tangents_agree():
    system = Lorenz()
    x0 = system.sample_initial_states(4, seed=2)
    options = {"t_end": 2.0, "transient": 0.0, "renormalize_every": 0.5, "rtol": 1e-10, "atol": 1e-10, "seed": 1}
    difference = finite_time_lyapunov_exponents(system, x0, **options)
    jvp = finite_time_lyapunov_exponents(system, x0, tangent="jvp", **options)
    assert float((difference - jvp).abs().max()) < 1e-7 and difference.shape == (4,)


def test_lyapunov_bad_inputs_name_the_argument():
    system = Lorenz()
    x0 = [[1.0, 1.0, 20.0]]
    with pytest.raises(PhysodeError, match="t_end must be larger than transient"):
        largest_lyapunov_exponent(system, x0, t_end=5.0, transient=10.0)
    with pytest.raises(PhysodeError, match="renormalize_every"):
        largest_lyapunov_exponent(system, x0, t_end=5.0, renormalize_every=-1.0)
    with pytest.raises(UnknownNameError, match="'difference', 'jvp'"):
        largest_lyapunov_exponent(system, x0, tangent="fd")
    with pytest.raises(PhysodeError, match="x0"):
        largest_lyapunov_exponent(system, [[1.0, 2.0]])
    with pytest.raises(PhysodeError, match="system"):
        largest_lyapunov_exponent(object(), x0)
    with pytest.raises(PhysodeError, match='method="radau"'):
        largest_lyapunov_exponent(VanDerPol(mu=1000.0), [[2.0, 0.0]], t_end=20.0)
