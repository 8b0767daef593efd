"""The true-dynamics environments: ``physode/Pendulum-v0``, ``physode/SpringMass-v0``, ``physode/NBody-v0``, and
``physode/System-v0`` (:class:`SystemEnv`: any system, with the reward and episode end you give)."""

from __future__ import annotations

import math

import numpy as np
import torch

from physode.checks import positive_float
from physode.errors import PhysodeError
from physode.systems import NBody, Pendulum, SpringMass, System

from .core import PhysodeEnv

#: One turn (rad). Angles are wrapped as ``theta - turn * floor(theta / turn)``, not with ``remainder``, which
#: is slow in torch and numpy alike (on 1024 angles here: 9 us against 6.5 us in torch, 4 us in numpy).
_TURN = 2 * math.pi

#: Start states: theta ~ U(-pi, pi), omega ~ U(-1, 1), as in Pendulum-v1.
_START_LOW, _START_RANGE = np.array([-math.pi, -1.0]), np.array([2 * math.pi, 2.0])

#: ``gym.make("physode/Pendulum-v0", **PENDULUM_V1)`` steps exactly like Gymnasium's ``Pendulum-v1``
#: (a uniform rod, g = 10, dt = 0.05, semi-implicit Euler, speed clipped to 8 and torque to 2), with
#: physode's angle convention (``theta = 0`` down, so Pendulum-v1's angle is ``theta - pi``).
PENDULUM_V1 = {"gravity": 10.0, "length": 1.0, "mass": 1.0, "rod": True, "dt": 0.05,
               "integrator": "semi_implicit_euler", "max_speed": 8.0, "max_torque": 2.0}


class PendulumEnv(PhysodeEnv):
    """Swing a pendulum up and balance it: :class:`physode.Pendulum` as a Gymnasium env.

    ## Description
    A pendulum (a point mass on a massless rod, or a uniform rod with ``rod=True``) hangs from a pivot
    and is driven by a torque at the pivot. The goal is to swing it up and keep it upright.

    ## Action Space
    ``Box(-max_torque, max_torque, (1,), float32)``: the torque (N m); actions outside are clipped.

    ## Observation Space
    ``Box((-pi, -max_speed), (pi, max_speed), (2,), float32)``: ``theta`` (rad, 0 hanging down, wrapped to
    ``[-pi, pi)``) and ``omega`` (rad/s; unbounded when ``max_speed`` is None).

    ## Rewards
    ``r = -(angle(theta - pi)^2 + 0.1 omega^2 + 0.001 u^2)`` on the state before the step, with angle() wrapping to
    ``[-pi, pi)``: 0 upright at rest (Pendulum-v1's cost). With a speed bound it is at worst
    ``-(pi^2 + 0.1 max_speed^2 + 0.001 max_torque^2)``, about -16.3 with ``PENDULUM_V1``'s bounds; without one
    (the default ``max_speed=None``) it has no lower bound.

    ## Starting State
    ``theta ~ U(-pi, pi)``, ``omega ~ U(-1, 1)`` as in ``Pendulum-v1``, or ``reset(options={"state": [theta, omega]})``.
    (Datasets from :func:`physode.simulate` start from the system's own distribution: swings below
    the separatrix. A learned env may thus start where its model saw no data; pass a start to avoid it.)

    ## Episode End
    Never terminates; truncated after 200 steps (``max_episode_steps``).

    ## Arguments
    ``gym.make("physode/Pendulum-v0", dt=0.05, integrator="rk4", step_size=None, max_torque=2.0,
    max_speed=None, gravity=9.81, length=1.0, mass=1.0, damping=0.0, rod=False, render_mode=None, device="auto")``;
    ``integrator`` is ``"semi_implicit_euler"`` or any :func:`physode.simulate` method (``"rk4"`` at
    ``step_size=dt`` by default). ``PENDULUM_V1`` holds the arguments that reproduce ``Pendulum-v1``.
    ``device``: where the states live (``"auto"``: the GPU when present; ``"cpu"`` is faster for one env).

    ## Version History
    * v0: initial version.
    """

    def __init__(self, render_mode=None, *, dt=0.05, integrator="rk4", step_size=None, rtol=1e-8, atol=1e-8,
                 max_torque=2.0, max_speed=None, gravity=9.81, length=1.0, mass=1.0, damping=0.0, rod=False,
                 dynamics=None, reference=False, device="auto"):
        super().__init__(Pendulum(gravity, length, mass, damping, rod), max_torque, dt=dt, integrator=integrator,
                         step_size=step_size, rtol=rtol, atol=atol, max_speed=max_speed, dynamics=dynamics,
                         reference=reference, render_mode=render_mode, device=device)

    def observation_bound(self):
        return np.array([math.pi, np.inf if self.max_speed is None else self.max_speed])

    def sample_start(self, rng):
        return self.sample_starts([rng])[0]

    def sample_starts(self, rngs):
        # rng.uniform(low, high) of each generator, bit for bit, without its per-call checks
        return _START_LOW + _START_RANGE * np.stack([rng.random(2) for rng in rngs])

    def observe(self, x):
        state = x.cpu().numpy()  # the observation goes to the host anyway: wrap the angle there, in float64
        obs = state.astype(np.float32)
        theta = state[:, 0]
        obs[:, 0] = theta - _TURN * np.floor((theta + math.pi) / _TURN)  # into [-pi, pi)
        return obs

    def reward(self, x, u, x_next):
        theta, omega, torque = x[:, 0], x[:, 1], u[:, 0]
        from_top = theta.div(_TURN).floor_().mul_(-_TURN).add_(theta).sub_(math.pi)  # theta - pi wrapped into [-pi, pi)
        cost = from_top.mul_(from_top).addcmul_(omega, omega, value=0.1).addcmul_(torque, torque, value=0.001)
        return cost.neg_()

    def draw(self, ax, x):
        length = self.system.params.length
        tip = (length * math.sin(x[0]), -length * math.cos(x[0]))
        ax.plot([0, tip[0]], [0, tip[1]], color="tab:red", lw=6 if self.system.params.rod else 2, solid_capstyle="round")
        if not self.system.params.rod:
            ax.plot(*tip, "o", color="tab:red", ms=14)
        ax.plot(0, 0, "ko", ms=5)
        _frame(ax, 1.2 * length)


class SpringMassEnv(PhysodeEnv):
    """Bring a chain of masses between two walls to rest: :class:`physode.SpringMass` as a Gymnasium env.

    ## Description
    ``n_masses`` masses joined by springs, with fixed walls at both ends; a force acts on each mass.
    The goal is to damp the oscillation out with little force.

    ## Action Space
    ``Box(-max_force, max_force, (n_masses,), float32)``: one force per mass; clipped.

    ## Observation Space
    ``Box(-inf, inf, (2 n_masses,), float32)``: displacements from rest, then velocities.

    ## Rewards
    ``r = -(|q|^2 + 0.1 |v|^2 + 0.001 |u|^2)`` on the state before the step: 0 at rest.

    ## Starting State
    :meth:`physode.SpringMass.sample_initial_states` (displacements and velocities in [-1, 1]), or
    ``reset(options={"state": [...]})``.

    ## Episode End
    Never terminates; truncated after 200 steps (``max_episode_steps``).

    ## Arguments
    ``gym.make("physode/SpringMass-v0", dt=0.1, integrator="rk4", step_size=None, max_force=1.0,
    stiffness=1.0, mass=1.0, damping=0.0, n_masses=1, render_mode=None, device="auto")``.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, render_mode=None, *, dt=0.1, integrator="rk4", step_size=None, rtol=1e-8, atol=1e-8,
                 max_force=1.0, stiffness=1.0, mass=1.0, damping=0.0, n_masses=1, dynamics=None, reference=False,
                 device="auto"):
        super().__init__(SpringMass(stiffness, mass, damping, n_masses), max_force, dt=dt, integrator=integrator,
                         step_size=step_size, rtol=rtol, atol=atol, dynamics=dynamics, reference=reference,
                         render_mode=render_mode, device=device)

    def reward(self, x, u, x_next):
        n = self.system.position_dim
        return -((x[:, :n] ** 2).sum(1) + 0.1 * (x[:, n:] ** 2).sum(1) + 0.001 * (u**2).sum(1))

    def draw(self, ax, x):
        n = self.system.position_dim
        rest = np.arange(1, n + 1, dtype=float)
        where = np.concatenate([[0.0], rest + x[:n], [n + 1.0]])
        ax.plot(where, np.zeros_like(where), color="0.5", lw=1, zorder=1)
        ax.scatter(where[1:-1], np.zeros(n), s=300, marker="s", color="tab:blue", zorder=2)
        ax.axvline(0, color="k", lw=4)
        ax.axvline(n + 1, color="k", lw=4)
        ax.set_xlim(-0.5, n + 1.5)
        ax.set_ylim(-1, 1)
        ax.set_yticks([])


class NBodyEnv(PhysodeEnv):
    """Keep a gravitating cluster together: :class:`physode.NBody` as a Gymnasium env.

    ## Description
    ``n_bodies`` point masses under Newtonian gravity in ``dim`` dimensions, each pushed by a thrust
    (an acceleration). The goal is to keep the cluster compact with little thrust.

    ## Action Space
    ``Box(-max_acceleration, max_acceleration, (n_bodies * dim,), float32)``: one acceleration per body
    and axis, body by body; clipped.

    ## Observation Space
    ``Box(-inf, inf, (2 n_bodies dim,), float32)``: all positions, then all velocities.

    ## Rewards
    ``r = -(mean_i |q_i - q_com|^2 + 0.001 |u|^2)`` on the state after the step.

    ## Starting State
    :meth:`physode.NBody.sample_initial_states` (a perturbed rotating ring: bound, well separated,
    zero total momentum), or ``reset(options={"state": [...]})``.

    ## Episode End
    Terminates when a body is farther than ``escape_radius`` from the centre of mass; truncated after
    400 steps (``max_episode_steps``). Also terminates, with ``info["diverged"]`` and the last state kept,
    when a step cannot be computed: a head-on encounter where an adaptive integrator's step size
    underflows, or bodies that coincide under semi-implicit Euler (use ``softening > 0`` to avoid both).

    ## Arguments
    ``gym.make("physode/NBody-v0", dt=0.05, integrator="rk4", step_size=None, max_acceleration=0.1,
    escape_radius=10.0, n_bodies=3, dim=2, masses=None, gravity=1.0, softening=0.0, render_mode=None, device="auto")``.
    Close encounters need small steps: prefer ``integrator="dopri5"`` for accuracy.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, render_mode=None, *, dt=0.05, integrator="rk4", step_size=None, rtol=1e-8, atol=1e-8,
                 max_acceleration=0.1, escape_radius=10.0, n_bodies=3, dim=2, masses=None, gravity=1.0,
                 softening=0.0, dynamics=None, reference=False, device="auto"):
        self.escape_radius = positive_float(escape_radius, "escape_radius")
        super().__init__(NBody(n_bodies, dim, masses, gravity, softening), max_acceleration, dt=dt,
                         integrator=integrator, step_size=step_size, rtol=rtol, atol=atol, dynamics=dynamics,
                         reference=reference, render_mode=render_mode, device=device)

    def _offsets(self, x):
        """``(N, n, dim)`` positions relative to the centre of mass."""
        q = self.system._bodies(x[:, : self.system.position_dim])
        m = self.system.masses(like=x)[None, :, None]
        return q - (m * q).sum(1, keepdim=True) / m.sum()

    def reward(self, x, u, x_next):
        return -((self._offsets(x_next) ** 2).sum(-1).mean(1) + 0.001 * (u**2).sum(1))

    def terminal(self, x):
        return (self._offsets(x).norm(dim=-1) > self.escape_radius).any(dim=1)

    def draw(self, ax, x):
        p = self.system.params
        trail = np.asarray(getattr(self, "trail", [x]))[:, : p.n_bodies * p.dim].reshape(-1, p.n_bodies, p.dim)
        for i in range(p.n_bodies):
            ax.plot(trail[:, i, 0], trail[:, i, 1] if p.dim > 1 else 0 * trail[:, i, 0], lw=1, color=f"C{i}")
            ax.plot(trail[-1, i, 0], trail[-1, i, 1] if p.dim > 1 else 0, "o", color=f"C{i}", ms=8)
        _frame(ax, max(2.0, float(np.abs(trail).max()) * 1.1))


def _frame(ax, half: float) -> None:
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")


class SystemEnv(PhysodeEnv):
    """Any physode :class:`~physode.System` as a Gymnasium env, with the task (reward, episode end) you give.

    ## Description
    The system's state is the observation and its control the action; each step integrates the true
    system over ``dt`` with the action held constant. The env is the Gymnasium face of a system of your own
    (a :class:`~physode.System` subclass) or of a built-in one with another task than its own env's.

    ## Action Space
    ``Box(-action_bound, action_bound, (C,), float32)`` with ``C = system.control_dim``: the control; clipped.
    A system without controls (``control_dim = 0``) is refused: no action could change what it does, so
    simulate it with :func:`physode.simulate` instead.

    ## Observation Space
    ``Box(-inf, inf, (D,), float32)``: the state, in the order of ``system.state_names``.

    ## Rewards
    ``reward(x, u, x_next)``: your callable, given the states before the step ``x: (N, D)``, the clipped
    actions ``u: (N, C)`` and the states after it ``x_next: (N, D)``, all float64 torch tensors on the env's
    device (``N = 1`` for a single env, ``num_envs`` for the vector env), returning ``(N,)`` numbers (a tensor,
    array or list). ``reward=None``: 0 for every step.

    ## Starting State
    ``system.sample_initial_states(1, seed=generator)`` with the env's numpy generator (physode's
    :func:`~physode.systems.base.rng` passes a generator through, as ``numpy.random.default_rng`` does), or
    ``reset(options={"state": [...]})``.

    ## Episode End
    Terminates where ``terminal(x_next)`` (your callable: states ``(N, D)`` to ``(N,)`` booleans) is True after a
    step, or where a step cannot be computed (``info["diverged"]``); ``terminal=None``: never.
    ``physode/System-v0`` truncates after 200 steps (``max_episode_steps``).

    ## Arguments
    ``gym.make("physode/System-v0", system=SYSTEM, reward=None, terminal=None, action_bound=1.0, dt=0.05,
    integrator=None, step_size=None, rtol=1e-8, atol=1e-8, max_speed=None, render_mode=None, device="auto")``.
    ``integrator=None`` is adaptive: ``"dopri5"``, or ``"radau"`` for a stiff system (``system.stiff``); the time
    scales of an arbitrary system are unknown, and error control meets ``rtol``/``atol`` whatever they are (a
    fixed-step ``"rk4"`` with a ``step_size`` is faster where they are known). A time-dependent system
    (``system.time_dependent``) is stepped from each state's own time, reported as ``info["time"]``.
    ``render_mode="rgb_array"`` draws the recent history of every state component.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, system=None, reward=None, terminal=None, render_mode=None, *, action_bound=1.0, dt=0.05,
                 integrator=None, step_size=None, rtol=1e-8, atol=1e-8, max_speed=None, dynamics=None,
                 reference=False, device="auto"):
        if not isinstance(system, System):
            raise PhysodeError(f"system must be a physode System instance (e.g. physode.Pendulum(), or one of your "
                               f"System subclasses), got {system!r}")
        if not system.control_dim:
            raise PhysodeError(f"system {system.name} has no controls (control_dim 0), so no action could change it: "
                               "give it a control, or simulate it with physode.simulate")
        for name, value in (("reward", reward), ("terminal", terminal)):
            if value is not None and not callable(value):
                raise PhysodeError(f"{name} must be a function of torch tensors (see SystemEnv) or None, got {value!r}")
        self._reward, self._terminal = reward, terminal
        if integrator is None:
            integrator = "radau" if system.stiff else "dopri5"
        super().__init__(system, action_bound, dt=dt, integrator=integrator, step_size=step_size, rtol=rtol,
                         atol=atol, max_speed=max_speed, dynamics=dynamics, reference=reference,
                         render_mode=render_mode, device=device)

    def sample_start(self, rng):
        start = torch.as_tensor(self.system.sample_initial_states(1, seed=rng), dtype=torch.float64)
        if start.shape != (1, self.system.state_dim):
            raise PhysodeError(f"{type(self.system).__name__}.sample_initial_states(1, seed=generator) must return shape "
                               f"(1, {self.system.state_dim}), got {tuple(start.shape)}")
        return start[0].cpu().numpy()

    def reward(self, x, u, x_next):
        if self._reward is None:
            return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        return _per_state(self._reward(x, u, x_next), "reward", x, torch.float64,
                          "return one number per state, e.g. -(x_next ** 2).sum(1)")

    def terminal(self, x):
        if self._terminal is None:
            return None
        return _per_state(self._terminal(x), "terminal", x, torch.bool,
                          "return one boolean per state, e.g. x[:, 0].abs() > 10")

    def draw(self, ax, x):
        trail = np.asarray(getattr(self, "trail", x[None]))
        times = self.dt * np.arange(1 - len(trail), 1)
        for i, name in enumerate(self.system.state_names):
            ax.plot(times, trail[:, i], lw=1.5, label=name)
        ax.set_xlabel("time before now")
        ax.legend(loc="upper left", fontsize=8)


def _per_state(value, name: str, x: torch.Tensor, dtype: torch.dtype, fix: str) -> torch.Tensor:
    """``value`` as a ``(N,)`` tensor of ``dtype`` on ``x``'s device, or a PhysodeError naming ``name`` with the ``fix``."""
    n = x.shape[0]
    try:
        out = torch.as_tensor(value, device=x.device)
    except (TypeError, ValueError, RuntimeError):
        raise PhysodeError(f"{name} must return a tensor of shape ({n},) for {n} states, got {value!r}; {fix}") from None
    if out.shape != (n,):
        raise PhysodeError(f"{name} must return shape ({n},) for states of shape {tuple(x.shape)}, got shape "
                           f"{tuple(out.shape)}; {fix}")
    if dtype is torch.bool:
        if out.dtype is not torch.bool:
            raise PhysodeError(f"{name} must return booleans, got dtype {out.dtype}; {fix}")
        return out
    if out.dtype is torch.bool or out.is_complex():
        raise PhysodeError(f"{name} must return real numbers, got dtype {out.dtype}; {fix}")
    out = out.to(dtype)
    if not torch.isfinite(out).all():
        raise PhysodeError(f"{name} returned {out.tolist() if n < 10 else 'values'} with NaN or inf; {fix}")
    return out
