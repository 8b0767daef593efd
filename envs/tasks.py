"""Control tasks of the cart-pole and the double pendulum: ``physode/CartPoleBalance-v0``,
``physode/CartPoleSwingUp-v0`` and ``physode/DoublePendulumSwingUp-v0``."""

from __future__ import annotations

import math

import numpy as np
import torch

from physode.checks import positive_float
from physode.systems.cart_pole import CartPole
from physode.systems.double_pendulum import DoublePendulum

from .core import PhysodeEnv

_TURN = 2 * math.pi
#: Half-width of the uniform start noise of every state component, as in Gymnasium's CartPole-v1.
_START_NOISE = 0.05
#: CartPole-v1's angle limit, 12 degrees, computed as Gymnasium computes it (the same float).
THETA_THRESHOLD = 12 * 2 * math.pi / 360
#: Gymnasium's state order (x, x_dot, theta, theta_dot) taken to physode's (x, theta, x_dot, theta_dot).
_FROM_GYMNASIUM = [0, 2, 1, 3]


def _wrapped(theta: np.ndarray) -> np.ndarray:
    """Angles wrapped into ``[-pi, pi)``."""
    return theta - _TURN * np.floor((theta + math.pi) / _TURN)


class _CartPoleTask(PhysodeEnv):
    """A task on :class:`~physode.systems.cart_pole.CartPole`: the force bound, the track and the drawing."""

    def __init__(self, render_mode, *, dt, integrator, step_size, rtol, atol, max_force, x_threshold, gravity,
                 cart_mass, pole_mass, half_length, dynamics, reference, device):
        self.x_threshold = positive_float(x_threshold, "x_threshold")
        super().__init__(CartPole(gravity, cart_mass, pole_mass, half_length), max_force, dt=dt, integrator=integrator,
                         step_size=step_size, rtol=rtol, atol=atol, dynamics=dynamics, reference=reference,
                         render_mode=render_mode, device=device)

    def sample_start(self, rng):
        return self.sample_starts([rng])[0]

    def sample_starts(self, rngs):
        # each generator draws as CartPole-v1's reset does, rng.uniform(-0.05, 0.05, (4,)) in Gymnasium's state order
        return np.stack([rng.uniform(-_START_NOISE, _START_NOISE, (4,))[_FROM_GYMNASIUM] for rng in rngs])

    def draw(self, ax, x):
        pole = 2 * self.system.params.half_length
        cart, theta = x[0], x[1]
        ax.plot([-self.x_threshold, self.x_threshold], [0, 0], color="0.4", lw=2)
        ax.plot([cart - 0.25, cart + 0.25], [0, 0], color="tab:blue", lw=14, solid_capstyle="butt")  # the cart
        ax.plot([cart, cart + pole * math.sin(theta)], [0, pole * math.cos(theta)], color="tab:brown", lw=5,
                solid_capstyle="round")
        half = self.x_threshold + pole
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        ax.set_aspect("equal")


class CartPoleBalanceEnv(_CartPoleTask):
    """Keep a pole balanced upright on a cart: :class:`~physode.systems.cart_pole.CartPole` as Gymnasium's
    ``CartPole-v1`` task with a continuous force.

    ## Description
    A pole hinged on a cart that moves along a frictionless track starts nearly upright; a horizontal force
    on the cart must keep it from falling and the cart on the track. The physics is CartPole-v1's, and
    with the default Euler integrator a step from the same state is CartPole-v1's step with the force
    ``+-10`` N of its actions ``1`` and ``0`` (to rounding, about 1e-16 per step).

    ## Action Space
    ``Box(-max_force, max_force, (1,), float32)``: the force on the cart (N, positive towards ``+x``); clipped.

    ## Observation Space
    ``Box((-2 x_threshold, -2 theta_threshold, -inf, -inf), (2 x_threshold, 2 theta_threshold, inf, inf), (4,),
    float32)``: ``x`` (m), ``theta`` (rad, 0 upright), ``x_dot``, ``theta_dot``: physode's state order, not
    CartPole-v1's ``(x, x_dot, theta, theta_dot)``. The bounds are twice the limits, as in CartPole-v1,
    so the state that ends an episode is still inside.

    ## Rewards
    ``+1`` for every step, the step that ends the episode included (as CartPole-v1).

    ## Starting State
    Every component ``~ U(-0.05, 0.05)``, drawn as CartPole-v1 draws it: ``reset(seed=s)`` starts where
    ``CartPole-v1``'s ``reset(seed=s)`` does. Or ``reset(options={"state": [x, theta, x_dot, theta_dot]})``.

    ## Episode End
    Terminates when ``|x| > x_threshold`` (2.4 m) or ``|theta| > theta_threshold`` (12 degrees) after a step, CartPole-v1's
    rule; truncated after 500 steps (``max_episode_steps``, as CartPole-v1).

    ## Arguments
    ``gym.make("physode/CartPoleBalance-v0", dt=0.02, integrator="euler", step_size=None, max_force=10.0,
    x_threshold=2.4, theta_threshold=THETA_THRESHOLD, gravity=9.8, cart_mass=1.0, pole_mass=0.1, half_length=0.5,
    render_mode=None, device="auto")``. ``integrator="euler"`` (one explicit Euler step of ``dt``) is CartPole-v1's;
    ``"rk4"`` or an adaptive method follows the true motion instead (Euler multiplies the energy of a swing of
    angular frequency ``omega`` by about ``1 + (omega dt)^2`` every step).

    ## Version History
    * v0: initial version.
    """

    def __init__(self, render_mode=None, *, dt=0.02, integrator="euler", step_size=None, rtol=1e-8, atol=1e-8,
                 max_force=10.0, x_threshold=2.4, theta_threshold=THETA_THRESHOLD, gravity=9.8, cart_mass=1.0,
                 pole_mass=0.1, half_length=0.5, dynamics=None, reference=False, device="auto"):
        self.theta_threshold = positive_float(theta_threshold, "theta_threshold")
        super().__init__(render_mode, dt=dt, integrator=integrator, step_size=step_size, rtol=rtol, atol=atol,
                         max_force=max_force, x_threshold=x_threshold, gravity=gravity, cart_mass=cart_mass,
                         pole_mass=pole_mass, half_length=half_length, dynamics=dynamics, reference=reference,
                         device=device)

    def observation_bound(self):
        return np.array([2 * self.x_threshold, 2 * self.theta_threshold, np.inf, np.inf])

    def reward(self, x, u, x_next):
        return torch.ones(x.shape[0], dtype=torch.float64, device=x.device)

    def terminal(self, x):
        return (x[:, 0].abs() > self.x_threshold) | (x[:, 1].abs() > self.theta_threshold)


class CartPoleSwingUpEnv(_CartPoleTask):
    """Swing a hanging pole up and balance it on a cart: :class:`~physode.systems.cart_pole.CartPole`.

    ## Description
    The pole of a cart-pole starts hanging straight down; a horizontal force on the cart must swing it up
    and keep it upright, with the cart near the middle of a track of half-length ``x_threshold``.

    ## Action Space
    ``Box(-max_force, max_force, (1,), float32)``: the force on the cart (N); clipped.

    ## Observation Space
    ``Box((-2 x_threshold, -pi, -inf, -inf), (2 x_threshold, pi, inf, inf), (4,), float32)``: ``x`` (m),
    ``theta`` (rad, 0 upright, wrapped to ``[-pi, pi)``), ``x_dot``, ``theta_dot``.

    ## Rewards
    On the state after the step and the clipped force ``u``: ``r = upright * centred * gentle`` with
    ``upright = (1 + cos theta) / 2``, ``centred = 1 - min(1, (x / x_threshold)^2) / 2`` and
    ``gentle = 1 - 0.2 (u / max_force)^2``: in ``[0, 1]``, 1 for the pole upright over the centre of the track
    with no force, 0 hanging down. Never negative, so ending an episode early never pays.

    ## Starting State
    Hanging down: ``theta = pi + U(-0.05, 0.05)``, the other components ``~ U(-0.05, 0.05)`` (drawn as CartPole-v1
    draws its start, then ``pi`` added to the angle), or ``reset(options={"state": [...]})``.

    ## Episode End
    Terminates when the cart leaves the track, ``|x| > x_threshold`` (2.4 m, as CartPole-v1's track) after a step;
    the pole may turn freely. Truncated after 500 steps (``max_episode_steps``: 10 s at ``dt = 0.02``).

    ## Arguments
    ``gym.make("physode/CartPoleSwingUp-v0", dt=0.02, integrator="rk4", step_size=None, max_force=10.0,
    x_threshold=2.4, gravity=9.8, cart_mass=1.0, pole_mass=0.1, half_length=0.5, render_mode=None, device="auto")``.
    RK4 by default: explicit Euler multiplies the energy of a swing by about ``1 + (omega dt)^2`` every step, which
    builds up over a swing-up episode (left alone, the hanging pole's small swing, ``omega`` near 4 rad/s, grows
    from 0.05 to 0.22 rad in 500 steps).

    ## Version History
    * v0: initial version.
    """

    def __init__(self, render_mode=None, *, dt=0.02, integrator="rk4", step_size=None, rtol=1e-8, atol=1e-8,
                 max_force=10.0, x_threshold=2.4, gravity=9.8, cart_mass=1.0, pole_mass=0.1, half_length=0.5,
                 dynamics=None, reference=False, device="auto"):
        super().__init__(render_mode, dt=dt, integrator=integrator, step_size=step_size, rtol=rtol, atol=atol,
                         max_force=max_force, x_threshold=x_threshold, gravity=gravity, cart_mass=cart_mass,
                         pole_mass=pole_mass, half_length=half_length, dynamics=dynamics, reference=reference,
                         device=device)

    def observation_bound(self):
        return np.array([2 * self.x_threshold, math.pi, np.inf, np.inf])

    def sample_starts(self, rngs):
        starts = super().sample_starts(rngs)
        starts[:, 1] += math.pi
        return starts

    def observe(self, x):
        state = x.cpu().numpy()  # wrapped on the host, in float64
        obs = state.astype(np.float32)
        obs[:, 1] = _wrapped(state[:, 1])
        return obs

    def reward(self, x, u, x_next):
        upright = (1 + torch.cos(x_next[:, 1])) / 2
        centred = 1 - (x_next[:, 0] / self.x_threshold).square().clamp(max=1.0) / 2
        gentle = 1 - 0.2 * (u[:, 0] / self.action_bound).square()
        return upright * centred * gentle

    def terminal(self, x):
        return x[:, 0].abs() > self.x_threshold


class DoublePendulumSwingUpEnv(PhysodeEnv):
    """Swing a double pendulum up and balance it upside down: :class:`~physode.systems.double_pendulum.DoublePendulum`.

    ## Description
    Two rods hang from a pivot, each driven by a torque: at the shoulder (pivot to rod 1) and at the elbow
    (rod 1 to rod 2). The goal is to bring both rods upright, the tip as high as it goes, and hold them there.
    The default torque bound, 5 N m, is well below the 29.4 N m that holds both default rods out horizontally:
    the swing-up has to pump energy in over several swings.

    ## Action Space
    ``Box(-max_torque, max_torque, (2,), float32)``: the shoulder and the elbow torque (N m); clipped.

    ## Observation Space
    ``Box((-pi, -pi, -inf, -inf), (pi, pi, inf, inf), (4,), float32)``: ``theta1``, ``theta2`` (absolute angles
    from hanging down, rad, wrapped to ``[-pi, pi)``), ``omega1``, ``omega2`` (rad/s).

    ## Rewards
    On the state after the step and the clipped torques ``u``:
    ``r = h - 0.01 (omega1^2 + omega2^2) (l1 + l2) / g - 0.01 |u|^2 / max_torque^2`` with the tip height
    ``h = -(l1 cos theta1 + l2 cos theta2) / (l1 + l2)`` in ``[-1, 1]``: at most 1, both rods upright at rest
    with no torque; -1 hanging at rest.

    ## Starting State
    Hanging at rest, perturbed: every component ``~ U(-0.05, 0.05)``; or ``reset(options={"state": [...]})``.

    ## Episode End
    Never terminates; truncated after 400 steps (``max_episode_steps``: 20 s at ``dt = 0.05``).

    ## Arguments
    ``gym.make("physode/DoublePendulumSwingUp-v0", dt=0.05, integrator="rk4", step_size=0.01, max_torque=5.0,
    mass1=1.0, mass2=1.0, length1=1.0, length2=1.0, gravity=9.81, damping=0.0, render_mode=None, device="auto")``.
    Five RK4 steps per env step by default: the rods spin at 10 rad/s and more during a swing-up.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, render_mode=None, *, dt=0.05, integrator="rk4", step_size=0.01, rtol=1e-8, atol=1e-8,
                 max_torque=5.0, mass1=1.0, mass2=1.0, length1=1.0, length2=1.0, gravity=9.81, damping=0.0,
                 dynamics=None, reference=False, device="auto"):
        super().__init__(DoublePendulum(mass1, mass2, length1, length2, gravity, damping), max_torque, dt=dt,
                         integrator=integrator, step_size=step_size, rtol=rtol, atol=atol, dynamics=dynamics,
                         reference=reference, render_mode=render_mode, device=device)

    def observation_bound(self):
        return np.array([math.pi, math.pi, np.inf, np.inf])

    def sample_start(self, rng):
        return self.sample_starts([rng])[0]

    def sample_starts(self, rngs):
        return np.stack([rng.uniform(-_START_NOISE, _START_NOISE, (4,)) for rng in rngs])

    def observe(self, x):
        state = x.cpu().numpy()
        obs = state.astype(np.float32)
        obs[:, :2] = _wrapped(state[:, :2])
        return obs

    def reward(self, x, u, x_next):
        p = self.system.params
        reach = p.length1 + p.length2
        height = -(p.length1 * torch.cos(x_next[:, 0]) + p.length2 * torch.cos(x_next[:, 1])) / reach
        spin = x_next[:, 2:].square().sum(1) * (reach / p.gravity)
        effort = u.square().sum(1) / self.action_bound**2
        return height - 0.01 * spin - 0.01 * effort

    def draw(self, ax, x):
        p = self.system.params
        elbow = (p.length1 * math.sin(x[0]), -p.length1 * math.cos(x[0]))
        tip = (elbow[0] + p.length2 * math.sin(x[1]), elbow[1] - p.length2 * math.cos(x[1]))
        ax.plot([0, elbow[0], tip[0]], [0, elbow[1], tip[1]], color="tab:red", lw=2)
        ax.plot([elbow[0], tip[0]], [elbow[1], tip[1]], "o", color="tab:red", ms=10)
        ax.plot(0, 0, "ko", ms=5)
        half = 1.2 * (p.length1 + p.length2)
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        ax.set_aspect("equal")
