"""The cart-pole: a uniform pole hinged on a cart that a horizontal force pushes along a frictionless track."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .base import MechanicalSystem, check_parameter, rng, store


@dataclasses.dataclass(frozen=True)
class CartPoleParams:
    """gravity g (m/s^2), cart mass M (kg), pole mass m (kg), pole half-length l (m; the pole is 2 l long)."""

    gravity: float = 9.8
    cart_mass: float = 1.0
    pole_mass: float = 0.1
    half_length: float = 0.5

    def __post_init__(self):
        for name in ("gravity", "cart_mass", "pole_mass", "half_length"):
            store(self, name, check_parameter(name, getattr(self, name)))


class CartPole(MechanicalSystem):
    """A cart of mass ``M`` on a frictionless horizontal track with a uniform pole (mass ``m``, length ``2 l``)
    hinged on it, pushed by a horizontal force ``F`` (N, the control, ``control_dim = 1``).

    State ``(x, theta, x_dot, theta_dot)``: the cart's position (m), the pole's angle from the upward
    vertical (rad, ``theta = 0`` upright, positive leaning towards ``+x``), and their rates. The equations are
    those of Barto, Sutton & Anderson (1983), "Neuronlike adaptive elements that can solve difficult
    learning control problems", IEEE Trans. SMC 13, 834, without their friction terms (derived in Florian 2007,
    "Correct equations for the dynamics of the cart-pole system", which Gymnasium cites), and exactly those of
    Gymnasium's ``CartPole-v1`` (whose ``length`` is the half-length ``l`` and whose state is ordered
    ``(x, x_dot, theta, theta_dot)``):

        a            = (F + m l theta_dot^2 sin theta) / (M + m)
        theta_ddot   = (g sin theta - cos theta a) / (l (4/3 - m cos^2 theta / (M + m)))
        x_ddot       = a - m l theta_ddot cos theta / (M + m)

    They follow from the Lagrangian of a uniform rod (moment of inertia ``m l^2 / 3`` about its centre,
    hence ``4/3``): ``T = (M + m) x_dot^2 / 2 + m l cos(theta) x_dot theta_dot + (2/3) m l^2 theta_dot^2``,
    ``V = m g l cos theta``. The divisor ``4/3 - m cos^2 theta / (M + m)`` is at least ``1/3``, so the field
    is finite at every finite state. Energy ``T + V`` (``m g l`` upright at rest) and the horizontal momentum
    ``(M + m) x_dot + m l cos(theta) theta_dot`` are conserved when ``F = 0``.

    Initial states (:meth:`sample_initial_states`): the pole swings about hanging down without going over the
    top, and the cart oscillates about a fixed centre of mass: ``theta = pi + U(-3 pi/4, 3 pi/4)``,
    ``theta_dot ~ U(-2, 2) sqrt(g / l)``, kept only when the energy above the hanging rest is below 90% of the
    barrier ``2 m g l``; ``x ~ U(-1, 1)`` and ``x_dot`` such that the horizontal momentum is zero. The states of
    such a run stay bounded (the angle within ``(0, 2 pi)``, the cart within reach of its start), so a learned
    model sees them all while it trains; from wider starts (a spinning pole, a drifting cart) angle and position
    grow without bound, and an MLP of the raw state cannot represent the field beyond what it saw.
    """

    name = "cart_pole"
    Params = CartPoleParams
    position_dim = 2
    control_dim = 1
    state_names = ("x", "theta", "x_dot", "theta_dot")

    def __init__(self, gravity: float = 9.8, cart_mass: float = 1.0, pole_mass: float = 0.1, half_length: float = 0.5):
        super().__init__(CartPoleParams(gravity, cart_mass, pole_mass, half_length))

    @property
    def conservative(self) -> bool:
        # the energy is conserved, but the accelerations depend on theta_dot^2: the drift-kick splitting of the
        # symplectic methods, which needs forces of the positions alone, would integrate another ODE
        return False

    @property
    def finite_everywhere(self) -> bool:
        return True  # the divisor is at least l / 3

    def acceleration(self, t, q, v, u):
        p = self.params
        total = p.cart_mass + p.pole_mass
        pole_ml = p.pole_mass * p.half_length
        theta, theta_dot = q[..., 1], v[..., 1]
        sin, cos = torch.sin(theta), torch.cos(theta)
        push = pole_ml * theta_dot**2 * sin
        if u is not None:
            push = push + u[..., 0]
        a = push / total
        theta_acc = (p.gravity * sin - cos * a) / (p.half_length * (4.0 / 3.0 - p.pole_mass * cos**2 / total))
        x_acc = a - pole_ml * theta_acc * cos / total
        return torch.stack([x_acc, theta_acc], dim=-1)

    def energy(self, x):
        p = self.params
        theta, x_dot, theta_dot = x[..., 1], x[..., 2], x[..., 3]
        kinetic = ((p.cart_mass + p.pole_mass) * x_dot**2 / 2 + p.pole_mass * p.half_length * torch.cos(theta) * x_dot * theta_dot
                   + 2.0 / 3.0 * p.pole_mass * p.half_length**2 * theta_dot**2)
        return kinetic + p.pole_mass * p.gravity * p.half_length * torch.cos(theta)

    def momentum(self, x):
        """The horizontal momentum ``(M + m) x_dot + m l cos(theta) theta_dot`` of states ``x: (..., 4)``, shape ``(...)``."""
        p = self.params
        return (p.cart_mass + p.pole_mass) * x[..., 2] + p.pole_mass * p.half_length * torch.cos(x[..., 1]) * x[..., 3]

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        p, gen = self.params, rng(seed)
        total, half = p.cart_mass + p.pole_mass, p.half_length
        barrier = 2 * p.pole_mass * p.gravity * half  # from hanging at rest to upright at rest
        kept = np.empty((0, 4))
        while len(kept) < n:
            theta = math.pi + gen.uniform(-0.75 * math.pi, 0.75 * math.pi, 2 * n)
            rate = gen.uniform(-2.0, 2.0, 2 * n) * math.sqrt(p.gravity / half)
            speed = -p.pole_mass * half * np.cos(theta) * rate / total  # zero horizontal momentum: no drift
            position = gen.uniform(-1.0, 1.0, 2 * n)
            cand = np.stack([position, theta, speed, rate], axis=1)
            above_rest = self.energy(torch.from_numpy(cand)).numpy() + p.pole_mass * p.gravity * half
            kept = np.concatenate([kept, cand[above_rest < 0.9 * barrier]])
        return torch.from_numpy(kept[:n].copy())
