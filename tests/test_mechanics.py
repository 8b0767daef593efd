"""The double pendulum and the cart-pole against independent references: their Lagrangians differentiated by
sympy, conservation laws along accurate runs, the closed-form normal modes, scipy's DOP853 and Gymnasium's CartPole-v1."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import sympy as sp
import torch
from scipy.integrate import solve_ivp

from physode import PhysodeError, simulate
from physode.systems.cart_pole import CartPole
from physode.systems.double_pendulum import DoublePendulum


def _euler_lagrange(T, V, q, qd, forces):
    """``(M(q, qd), rhs(q, qd, ...))`` of ``M qdd = rhs`` from a Lagrangian ``T - V`` and generalised forces, as numpy functions.

    ``d/dt dL/dqd = dL/dq + Q`` with ``d/dt dL/dqd = (d2L/dqd2) qdd + (d2L/dqd dq) qd``.
    """
    L = T - V
    qd_vec = sp.Matrix(qd)
    grad_qd = sp.Matrix([sp.diff(L, v) for v in qd])
    M = grad_qd.jacobian(qd_vec)
    rhs = sp.Matrix([sp.diff(L, c) for c in q]) - grad_qd.jacobian(sp.Matrix(q)) * qd_vec + sp.Matrix(forces)
    return sp.simplify(M), rhs


def _double_pendulum_reference():
    """The double pendulum's accelerations from its Lagrangian in Cartesian coordinates, with friction from a Rayleigh
    dissipation function and torques by virtual work: ``acc(state (4,), u (2,), params) -> (2,)``."""
    th1, th2, w1, w2, m1, m2, l1, l2, g, c, u1, u2 = sp.symbols("th1 th2 w1 w2 m1 m2 l1 l2 g c u1 u2", real=True)
    x1, y1 = l1 * sp.sin(th1), -l1 * sp.cos(th1)
    x2, y2 = x1 + l2 * sp.sin(th2), y1 - l2 * sp.cos(th2)
    speed2 = [sp.diff(e, th1) * w1 + sp.diff(e, th2) * w2 for e in (x1, y1, x2, y2)]  # d/dt of each coordinate
    T = m1 * (speed2[0] ** 2 + speed2[1] ** 2) / 2 + m2 * (speed2[2] ** 2 + speed2[3] ** 2) / 2
    V = m1 * g * y1 + m2 * g * y2
    rayleigh = c * (m1 + m2) * l1**2 * w1**2 / 2 + c * m2 * l2**2 * (w2 - w1) ** 2 / 2
    work = u1 * th1 + u2 * (th2 - th1)  # the elbow torque turns rod 2 relative to rod 1
    forces = [sp.diff(work, th) - sp.diff(rayleigh, w) for th, w in ((th1, w1), (th2, w2))]
    M, rhs = _euler_lagrange(T, V, [th1, th2], [w1, w2], forces)
    args = (th1, th2, w1, w2, u1, u2, m1, m2, l1, l2, g, c)
    M_f, rhs_f = sp.lambdify(args, M, "numpy"), sp.lambdify(args, rhs, "numpy")

    def acc(state, u, p):
        values = (*state, *u, p.mass1, p.mass2, p.length1, p.length2, p.gravity, p.damping)
        return np.linalg.solve(np.array(M_f(*values), dtype=float), np.array(rhs_f(*values), dtype=float).ravel())

    return acc


def _cart_pole_reference():
    """The cart-pole's accelerations from the Lagrangian of a cart and a uniform rod (inertia ``m (2l)^2 / 12`` about
    its centre), ``theta`` from the upward vertical: ``acc(state (4,), force, params) -> (2,)``."""
    x, th, v, w, M_c, m, half, g, F = sp.symbols("x th v w M m l g F", real=True)
    cx, cy = x + half * sp.sin(th), half * sp.cos(th)  # the pole's centre of mass
    cvx, cvy = sp.diff(cx, x) * v + sp.diff(cx, th) * w, sp.diff(cy, th) * w
    T = M_c * v**2 / 2 + m * (cvx**2 + cvy**2) / 2 + m * (2 * half) ** 2 / 12 * w**2 / 2
    V = m * g * cy
    Mass, rhs = _euler_lagrange(T, V, [x, th], [v, w], [F, 0])
    args = (x, th, v, w, F, M_c, m, half, g)
    M_f, rhs_f = sp.lambdify(args, Mass, "numpy"), sp.lambdify(args, rhs, "numpy")

    def acc(state, force, p):
        values = (*state, force, p.cart_mass, p.pole_mass, p.half_length, p.gravity)
        return np.linalg.solve(np.array(M_f(*values), dtype=float), np.array(rhs_f(*values), dtype=float).ravel())

    return acc


@pytest.fixture(scope="module")
def double_pendulum_acc():
    return _double_pendulum_reference()


@pytest.fixture(scope="module")
def cart_pole_acc():
    return _cart_pole_reference()


# ---- the double pendulum ----

OTHER_DOUBLE_PENDULUM = {"mass1": 0.7, "mass2": 1.9, "length1": 1.3, "length2": 0.4, "gravity": 3.7, "damping": 0.3}


@pytest.mark.parametrize("params", [{}, OTHER_DOUBLE_PENDULUM])
def test_the_double_pendulum_field_is_its_lagrangian(double_pendulum_acc, params):
    """At random states and torques (angles over several turns, fast spins), against sympy's Euler-Lagrange equations."""
    system = DoublePendulum(**params)
    gen = np.random.default_rng(0)
    x = np.concatenate([gen.uniform(-10, 10, (40, 2)), gen.uniform(-8, 8, (40, 2))], axis=1)
    u = gen.uniform(-5, 5, (40, 2))
    field = system.vector_field(0.0, torch.tensor(x), torch.tensor(u)).numpy()
    expected = np.array([double_pendulum_acc(xi, ui, system.params) for xi, ui in zip(x, u, strict=True)])
    np.testing.assert_allclose(field[:, :2], x[:, 2:], rtol=0, atol=0)
    np.testing.assert_allclose(field[:, 2:], expected, rtol=1e-12, atol=1e-12)


def test_the_double_pendulum_conserves_energy_along_a_long_run():
    system = DoublePendulum()
    x0 = system.sample_initial_states(2, seed=1)
    x0 = torch.cat([x0, torch.tensor([[3.0, -2.5, 1.0, 2.0]], dtype=torch.float64)])  # near the top: chaotic, with flips
    y = simulate(system, x0, torch.linspace(0.0, 10.0, 101, dtype=torch.float64))
    energy = system.energy(y)
    assert energy[:, 0].max() > 50 and (y[2, :, 1] - y[2, 0, 1]).abs().max() > 2 * math.pi  # the outer rod flips
    drift = ((energy - energy[:, :1]).abs() / energy[:, :1]).max().item()
    assert drift < 1e-9


def test_the_double_pendulum_energy_changes_by_the_power_of_torques_and_friction():
    """dE/dt along the field, by autograd, against the power of the torques minus the friction's dissipation."""
    system = DoublePendulum(mass1=1.3, mass2=0.6, length1=0.8, length2=1.1, damping=0.4)
    p = system.params
    gen = np.random.default_rng(2)
    x = torch.tensor(np.concatenate([gen.uniform(-4, 4, (30, 2)), gen.uniform(-5, 5, (30, 2))], 1), requires_grad=True)
    u = torch.tensor(gen.uniform(-3, 3, (30, 2)))
    (grad,) = torch.autograd.grad(system.energy(x).sum(), x)
    rate = (grad * system.vector_field(0.0, x, u)).sum(1)
    w1, w2 = x[:, 2].detach(), x[:, 3].detach()
    i1, i2 = (p.mass1 + p.mass2) * p.length1**2, p.mass2 * p.length2**2
    power = u[:, 0] * w1 + u[:, 1] * (w2 - w1) - p.damping * (i1 * w1**2 + i2 * (w2 - w1) ** 2)
    np.testing.assert_allclose(rate.detach().numpy(), power.numpy(), rtol=1e-10, atol=1e-10)


def test_the_double_pendulum_normal_modes_are_the_closed_form():
    """Equal masses and lengths: small oscillations about hanging down at omega^2 = (g / l)(2 -+ sqrt 2)."""
    g, length = 9.81, 0.7
    system = DoublePendulum(length1=length, length2=length, mass1=2.0, mass2=2.0, gravity=g)
    jacobian = torch.autograd.functional.jacobian(lambda x: system.vector_field(0.0, x), torch.zeros(4, dtype=torch.float64))
    eigenvalues = np.linalg.eigvals(jacobian.numpy())
    np.testing.assert_allclose(eigenvalues.real, 0.0, atol=1e-12)
    measured = np.sort(eigenvalues.imag[eigenvalues.imag > 0] ** 2)
    np.testing.assert_allclose(measured, [g / length * (2 - math.sqrt(2)), g / length * (2 + math.sqrt(2))], rtol=1e-12)


def test_the_double_pendulum_matches_scipy_dop853(double_pendulum_acc):
    """physode.simulate (dopri8 at 1e-14) against scipy's DOP853 at 1e-12 on the sympy field, with torques held."""
    system = DoublePendulum(mass2=0.5, length2=0.6, damping=0.05)
    x0 = system.sample_initial_states(3, seed=4).numpy()
    u = np.array([[0.5, -0.2], [0.0, 1.0], [-1.5, 0.3]])
    t = np.linspace(0.0, 2.0, 11)
    ours = simulate(system, torch.tensor(x0), torch.tensor(t), u=torch.tensor(u)).numpy()
    for k in range(3):
        def rhs(_, s, k=k):
            return np.concatenate([s[2:], double_pendulum_acc(s, u[k], system.params)])

        theirs = solve_ivp(rhs, (0.0, 2.0), x0[k], method="DOP853", t_eval=t, rtol=1e-12, atol=1e-12).y.T
        np.testing.assert_allclose(ours[k], theirs, rtol=0, atol=1e-8)


# ---- the cart-pole ----

def test_the_cart_pole_is_gymnasiums_cartpole_step_for_step():
    """One explicit Euler step x + tau f(x, u) of physode's field is CartPole-v1's step (force +-10 N, tau 0.02;
    Gymnasium orders the state (x, x_dot, theta, theta_dot)), over 100-step episodes with random actions:
    from their state before every step, and left to run on its own from their start."""
    system, tau = CartPole(), 0.02
    order = [0, 2, 1, 3]  # ours from theirs (and back: the permutation is its own inverse)
    rng = np.random.default_rng(0)
    theirs = gym.make("CartPole-v1").unwrapped
    worst_step = worst_run = 0.0
    for episode in range(3):
        theirs.reset(seed=episode)
        alone = torch.tensor(theirs.state[order])[None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Gymnasium's warning about stepping after the pole fell
            for _ in range(100):
                action = int(rng.integers(2))
                u = torch.tensor([[10.0 if action == 1 else -10.0]], dtype=torch.float64)
                before = torch.tensor(theirs.state[order])[None]
                theirs.step(action)
                after = theirs.state[order]
                ours = (before + tau * system.vector_field(0.0, before, u))[0].numpy()
                alone = alone + tau * system.vector_field(0.0, alone, u)
                worst_step = max(worst_step, np.abs(ours - after).max() / max(1.0, np.abs(after).max()))
                worst_run = max(worst_run, np.abs(alone[0].numpy() - after).max() / max(1.0, np.abs(after).max()))
    assert worst_step < 1e-14 and worst_run < 1e-12


def test_the_cart_pole_field_is_its_lagrangian(cart_pole_acc):
    """At random states and forces, with other parameters too, against sympy's Euler-Lagrange equations."""
    gen = np.random.default_rng(1)
    for params in ({}, {"gravity": 3.0, "cart_mass": 0.4, "pole_mass": 2.5, "half_length": 1.7}):
        system = CartPole(**params)
        x = np.concatenate([gen.uniform(-5, 5, (30, 1)), gen.uniform(-10, 10, (30, 1)), gen.uniform(-6, 6, (30, 2))], 1)
        force = gen.uniform(-20, 20, 30)
        field = system.vector_field(0.0, torch.tensor(x), torch.tensor(force[:, None])).numpy()
        expected = np.array([cart_pole_acc(xi, fi, system.params) for xi, fi in zip(x, force, strict=True)])
        np.testing.assert_array_equal(field[:, :2], x[:, 2:])
        np.testing.assert_allclose(field[:, 2:], expected, rtol=1e-12, atol=1e-12)


def test_the_cart_pole_conserves_energy_and_momentum_without_force():
    system = CartPole()
    x0 = system.sample_initial_states(4, seed=0)
    y = simulate(system, x0, torch.linspace(0.0, 10.0, 51, dtype=torch.float64))
    p = system.params
    scale = p.pole_mass * p.gravity * p.half_length  # the energy itself may pass through 0 (m g l cos theta)
    energy, momentum = system.energy(y), system.momentum(y)
    assert (energy - energy[:, :1]).abs().max().item() / scale < 1e-10
    assert (momentum - momentum[:, :1]).abs().max().item() < 1e-11
    assert (y[:, :, 1].max(1).values - y[:, :, 1].min(1).values > math.pi).any()  # some poles went over the top


def test_the_cart_pole_energy_changes_by_the_power_of_the_force():
    system = CartPole(pole_mass=0.8, half_length=0.3)
    gen = np.random.default_rng(3)
    x = torch.tensor(np.concatenate([gen.uniform(-3, 3, (20, 2)), gen.uniform(-4, 4, (20, 2))], 1), requires_grad=True)
    u = torch.tensor(gen.uniform(-10, 10, (20, 1)))
    (grad,) = torch.autograd.grad(system.energy(x).sum(), x)
    rate = (grad * system.vector_field(0.0, x, u)).sum(1)
    np.testing.assert_allclose(rate.detach().numpy(), (u[:, 0] * x[:, 2]).detach().numpy(), rtol=1e-10, atol=1e-10)


def test_the_cart_pole_matches_scipy_dop853(cart_pole_acc):
    system = CartPole(pole_mass=0.5)
    x0 = system.sample_initial_states(3, seed=5).numpy()
    force = np.array([3.0, -7.0, 0.0])
    t = np.linspace(0.0, 3.0, 16)
    ours = simulate(system, torch.tensor(x0), torch.tensor(t), u=torch.tensor(force[:, None])).numpy()
    for k in range(3):
        def rhs(_, s, k=k):
            return np.concatenate([s[2:], cart_pole_acc(s, force[k], system.params)])

        theirs = solve_ivp(rhs, (0.0, 3.0), x0[k], method="DOP853", t_eval=t, rtol=1e-12, atol=1e-12).y.T
        np.testing.assert_allclose(ours[k], theirs, rtol=0, atol=1e-8)


# ---- both: the System interface ----

@pytest.mark.parametrize("system", [DoublePendulum(damping=0.2), CartPole()], ids=["double_pendulum", "cart_pole"])
def test_fields_batch_over_leading_dimensions_in_float32_and_float64(system):
    x = system.sample_initial_states(6, seed=3).reshape(2, 3, 4)
    u = torch.linspace(-2, 2, 6 * system.control_dim, dtype=torch.float64).reshape(2, 3, system.control_dim)
    rows = torch.stack([system.vector_field(0.0, x[i, j], u[i, j]) for i in range(2) for j in range(3)]).reshape(2, 3, 4)
    batched = system.vector_field(torch.zeros(2, 3, dtype=torch.float64), x, u)  # t as a tensor too
    np.testing.assert_allclose(batched.numpy(), rows.numpy(), rtol=1e-14)
    low = system.vector_field(1.5, x.float(), u.float())
    assert low.dtype == torch.float32 and low.shape == (2, 3, 4)
    np.testing.assert_allclose(low.numpy(), rows.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(system.vector_field(0.0, x).numpy(), system.vector_field(0.0, x, torch.zeros_like(u)).numpy())
    assert system.energy(x).shape == (2, 3)
    assert system.finite_everywhere and not system.conservative
    with pytest.raises(PhysodeError, match="leapfrog"):  # speed-dependent forces: no drift-kick splitting
        simulate(system, x[0], torch.tensor([0.0, 0.1]), method="leapfrog", step_size=0.01)
    with pytest.raises(PhysodeError, match="last dimension 4"):
        system.vector_field(0.0, x[..., :3])


def test_initial_states_follow_their_documented_distributions():
    dp = DoublePendulum(length2=0.25, gravity=4.0).sample_initial_states(4000, seed=7)
    cp = CartPole(half_length=0.4).sample_initial_states(4000, seed=7)
    for states in (dp, cp):
        assert states.dtype == torch.float64 and states.shape == (4000, 4)
    again = DoublePendulum(length2=0.25, gravity=4.0)
    np.testing.assert_array_equal(dp.numpy(), again.sample_initial_states(4000, seed=7).numpy())
    assert not np.array_equal(dp.numpy(), again.sample_initial_states(4000, seed=8).numpy())
    # the documented ranges, filled: angles (and the cart's place) uniform before the energy cut
    assert dp[:, :2].abs().max() <= math.pi / 2 and dp[:, :2].abs().max() > 0.99 * math.pi / 2
    assert cp[:, 0].abs().max() <= 1.0 and cp[:, 0].abs().max() > 0.99
    assert ((cp[:, 1] - math.pi).abs() <= 0.75 * math.pi).all()
    # no rod can flip: the energy stays below 90% of the least energy of a flip (here the outer rod's)
    flip = 2 * 4.0 * min(1.0 * 0.25, 2.0 * 1.0)
    assert DoublePendulum(length2=0.25, gravity=4.0).energy(dp).max() < 0.9 * flip
    # the pole swings below its top (90% of the barrier above the hanging rest) with zero horizontal momentum
    system = CartPole(half_length=0.4)
    barrier = 2 * 0.1 * 9.8 * 0.4
    above_rest = system.energy(cp) + 0.1 * 9.8 * 0.4
    assert above_rest.max() < 0.9 * barrier and above_rest.max() > 0.8 * barrier
    torch.testing.assert_close(system.momentum(cp), torch.zeros(4000, dtype=torch.float64), atol=1e-14, rtol=0)


def test_bad_parameters_are_refused():
    with pytest.raises(PhysodeError, match="mass2"):
        DoublePendulum(mass2=-1.0)
    with pytest.raises(PhysodeError, match="damping"):
        DoublePendulum(damping=-0.1)
    with pytest.raises(PhysodeError, match="half_length"):
        CartPole(half_length=0.0)
    with pytest.raises(PhysodeError, match="cart_mass"):
        CartPole(cart_mass=float("nan"))
    with pytest.raises(PhysodeError, match="n must be"):
        CartPole().sample_initial_states(0)
    assert CartPole().spec() == {"name": "cart_pole", "params": {"gravity": 9.8, "cart_mass": 1.0, "pole_mass": 0.1,
                                                                  "half_length": 0.5}}
    assert DoublePendulum(mass1=2).spec()["params"]["mass1"] == 2.0
