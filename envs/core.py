"""The machinery every physode environment shares: one batched transition, a single env and a vector env.

A :class:`PhysodeEnv` is a task (spaces, reward, start states, termination; subclasses such as
:class:`~physode.envs.PendulumEnv` define it) on top of a dynamics: the true system integrated over
``dt`` with the chosen integrator, or a learned model rolled out over ``dt`` (``dynamics=model``).
Every step goes through :meth:`PhysodeEnv.transition`, which works on a batch of states ``(N, D)`` in
float64 torch; the single env uses it with ``N = 1`` and :class:`PhysodeVectorEnv` with ``N = num_envs``,
so a vector env and ``N`` single envs take the same steps.

A field that depends on the time itself (``time_dependent`` systems and models, e.g. a periodic forcing) is
stepped from each state's own time, ``k dt`` after its episode's start; ``info["time"]`` reports it (the
observation is the state alone). Autonomous fields step over ``[0, dt]``: the same flow from any start time.

The states live on the env's ``device`` (``"auto"``: the GPU when present). Gymnasium's API hands
actions in and observations, rewards and flags out as numpy arrays, so each step moves exactly those
between host and device, once for the whole batch; on a GPU that pays off for large vector envs,
while a single env is faster with ``device="cpu"``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from physode.checkpoint import refuse_other_system
from physode.checks import all_finite, positive_float, positive_int
from physode.devices import resolve_device
from physode.errors import PhysodeError, SolverError, unknown_name
from physode.models import ContinuousModel, Ensemble
from physode.simulate import METHODS, refuse_symplectic_misuse, simulate
from physode.systems import MechanicalSystem

class InvalidAction(PhysodeError, gym.error.InvalidAction):
    """An action of the wrong shape or with NaN: both a :class:`~physode.PhysodeError` and Gymnasium's ``InvalidAction``."""


class ResetNeeded(PhysodeError, gym.error.ResetNeeded):
    """``step`` before ``reset``: both a :class:`~physode.PhysodeError` and Gymnasium's ``ResetNeeded``."""


#: Integrators of the true dynamics: Gymnasium classic-control's semi-implicit Euler (velocity first,
#: then position with the new velocity; ``max_speed`` clips in between) and every method of
#: :func:`physode.simulate`.
INTEGRATORS = ("semi_implicit_euler", *METHODS)
#: The largest state magnitude an observation (float32) can show; a state beyond it counts as diverged.
OBSERVABLE = float(np.finfo(np.float32).max)
#: How a learned env steps an ensemble: by the members' mean, or by one member drawn per episode.
MEMBER_MODES = ("mean", "sample")


class PhysodeEnv(gym.Env):
    """Base of physode's environments (see the module doc); subclasses build the system and the task.

    Args:
        system: the :class:`~physode.System` whose state is the observation and whose control is the action.
        action_bound: actions are clipped to ``[-action_bound, action_bound]`` per component.
        dt: time between steps.
        integrator: one of :data:`INTEGRATORS` for the true dynamics (default ``"rk4"``).
        step_size: largest integration step of fixed-step methods (default ``dt``: one step per env step).
        rtol, atol: tolerances of adaptive methods.
        max_speed: clip velocities (mechanical systems) to this magnitude after each step; None: no clip.
        dynamics: None for the true system, or a learned model (anything with ``rollout(x0, t, u)``)
            stepped over ``dt`` with the action held constant.
        reference: with a learned ``dynamics``, also step the true system from the same start and put
            ``info["true_state"]`` and ``info["prediction_error"]`` (``||x_hat - x|| / ||x||``) in every step.
        member: with an :class:`~physode.Ensemble` of 2 or more members as ``dynamics``, ``"mean"`` steps by the
            members' mean, ``"sample"`` by one member drawn at each reset with the env's generator (PETS's
            trajectory sampling: each episode follows one plausible model); either way ``info["uncertainty"]``
            ``(D,)`` is the members' spread (standard deviation per state) of the step just taken, from the same
            state (0 at a reset), and with ``"sample"`` ``info["member"]`` the episode's member.
        render_mode: None or ``"rgb_array"`` (drawn with matplotlib).
        device: where the states live and the dynamics run (see the module doc); a learned ``dynamics``
            model is moved there.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}  # each env's own: one frame per dt

    def __init__(self, system, action_bound: float, *, dt: float, integrator: str = "rk4", step_size=None,
                 rtol: float = 1e-8, atol: float = 1e-8, max_speed=None, dynamics=None, reference: bool = False,
                 member: str = "mean", render_mode=None, device="auto"):
        if integrator not in INTEGRATORS:
            raise unknown_name("integrator", integrator, INTEGRATORS)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise unknown_name("render_mode", render_mode, self.metadata["render_modes"])
        refuse_symplectic_misuse(system, integrator)  # at construction, not at the first step
        self.system = system
        self.dt = positive_float(dt, "dt")
        self.integrator = integrator
        self.step_size = self.dt if step_size is None else positive_float(step_size, "step_size")
        self.rtol, self.atol = positive_float(rtol, "rtol"), positive_float(atol, "atol")
        self.max_speed = None if max_speed is None else positive_float(max_speed, "max_speed")
        if (self.max_speed is not None or integrator == "semi_implicit_euler") and not isinstance(system, MechanicalSystem):
            raise PhysodeError(f"max_speed and the semi_implicit_euler integrator need a mechanical system, not {system.name}")
        self.action_bound = positive_float(action_bound, "action_bound")
        self.device = resolve_device(device)
        self._step_times = torch.tensor([0.0, self.dt], dtype=torch.float64, device=self.device)
        self.dynamics = dynamics
        if dynamics is not None:
            _check_model(dynamics, system)
            if isinstance(dynamics, torch.nn.Module):
                dynamics.to(self.device)
        if reference and dynamics is None:
            raise PhysodeError("reference=True compares a learned model with the truth: pass dynamics=model too")
        self.reference = bool(reference)
        #: the ensemble's members (K), or 0 where the dynamics have no spread (the truth, one model)
        self.spread_members = dynamics.size if isinstance(dynamics, Ensemble) and dynamics.size >= 2 else 0
        if member not in MEMBER_MODES:
            raise unknown_name("member", member, MEMBER_MODES)
        if member == "sample" and not self.spread_members:
            raise PhysodeError("member='sample' draws one member of an ensemble per episode: pass an ensemble of 2 or "
                               "more members as the dynamics (physode train --ensemble K), or leave member out")
        self.member = member
        self.spread = None  #: (N, D) the members' spread of the last step of each state of the batch
        self.members = None  #: (N,) the member each state of the batch steps with (member="sample"), else None
        # a field of t itself is stepped from each state's time (info["time"]); an autonomous one over [0, dt]
        self.timed = bool(getattr(system, "time_dependent", False) or getattr(dynamics, "time_dependent", False))
        # semi-implicit Euler with a speed clip on a system without singularities cannot leave finite states (the
        # clipped speeds keep the accelerations finite and the positions growing at most linearly): such steps
        # skip the per-step finiteness check (6% of a PENDULUM_V1 step); every other kind of step has it
        self._always_finite = (dynamics is None and integrator == "semi_implicit_euler" and self.max_speed is not None
                               and system.finite_everywhere)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": max(1, round(1 / self.dt))}  # frames play in about real time
        self.action_space = gym.spaces.Box(-self.action_bound, self.action_bound, (system.control_dim,), np.float32)
        high = self.observation_bound().astype(np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self._state = None  # (1, D) float64 torch, the (possibly learned) state
        self._true = None  # (1, D), the reference's state
        self._figure = None

    # ---- the task: subclasses override these (all batched over the first dimension) ----
    def observation_bound(self) -> np.ndarray:
        """``(D,)`` upper bounds of the observation (the lower bounds are their negatives)."""
        return np.full(self.system.state_dim, np.inf)

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        """One start state ``(D,)`` from the env's generator (default: the system's own distribution)."""
        return self.system.sample_initial_states(1, seed=rng)[0].numpy()

    def sample_starts(self, rngs) -> np.ndarray:
        """``(len(rngs), D)`` start states, one from each generator, each as :meth:`sample_start` draws it
        (a vector env's reset and autoreset; subclasses may draw them in one vectorised step)."""
        return np.stack([np.asarray(self.sample_start(rng), dtype=np.float64) for rng in rngs])

    def reward(self, x: torch.Tensor, u: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        """``(N,)`` rewards of the steps ``x -> x_next`` under the clipped actions ``u``."""
        raise NotImplementedError

    def terminal(self, x: torch.Tensor) -> torch.Tensor | None:
        """``(N,)`` True where the state ends the episode, or None: no state does (the default)."""
        return None

    def observe(self, x: torch.Tensor) -> np.ndarray:
        """``(N, D)`` float32 observations of states ``x`` (default: the state itself), on the host."""
        return x.to(torch.float32).cpu().numpy()

    def draw(self, ax, x: np.ndarray) -> None:
        """Draw state ``x: (D,)`` on matplotlib axes (for ``render``)."""
        raise NotImplementedError

    # ---- the transition, shared by the single and the vector env ----
    def clip_actions(self, action, n: int | None = None, ignored=()) -> torch.Tensor:
        """Checked, clipped actions ``(1, C)`` in float64 from one env's ``(C,)`` (``n`` None), or ``(n, C)`` from a
        vector env's ``(n, C)``; the rows ``ignored`` (sub-envs being reset, whose actions are not used) may hold
        anything numeric and come back 0."""
        shape = (self.system.control_dim,) if n is None else (n, self.system.control_dim)
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidAction(f"action must be numbers of shape {shape}, got {action!r}") from None
        if a.shape != shape and not (n is None and a.shape == (1, self.system.control_dim)):
            space = self.action_space if n is None else batch_space(self.action_space, n)
            raise InvalidAction(f"action must have shape {shape} (action_space {space}), got {a.shape}")
        if len(ignored):
            a = a.copy()  # the caller's array is never written
            a[ignored] = 0.0
        if not np.isfinite(a).all():
            raise InvalidAction(f"action contains NaN or inf: {a.tolist() if a.size < 10 else '...'}")
        clipped = torch.from_numpy(a.reshape(-1, self.system.control_dim)).clamp(-self.action_bound, self.action_bound)
        return clipped.to(self.device)  # clamp made a copy: the caller's array is never written

    def advance(self, x: torch.Tensor, u: torch.Tensor, learned: bool = True, t: torch.Tensor | None = None) -> torch.Tensor:
        """States ``dt`` after ``x: (N, D)`` under actions ``u: (N, C)`` held constant (float64), from the times
        ``t: (N,)`` of a time-dependent field (None: from 0); NaN rows where the step cannot be computed (see
        :func:`_solved_rows`)."""
        if learned and self.spread_members:
            with torch.inference_mode():
                members = _solved_rows(self._member_steps, x, u, t, width=self.spread_members * x.shape[1])
            members = members.clone().view(x.shape[0], self.spread_members, x.shape[1])  # (N, K, D), outside inference
            self.spread = members.std(1, correction=0)
            x_next = members.mean(1) if self.members is None else members[torch.arange(x.shape[0]), self.members]
        elif learned and self.dynamics is not None:
            with torch.inference_mode():
                x_next = _solved_rows(self._learned_step, x, u, t)
            x_next = x_next.clone()  # a copy made outside inference mode is an ordinary tensor
        elif self.integrator == "semi_implicit_euler":
            p = self.system.position_dim
            q, v = x[:, :p], x[:, p:]
            v = v.add(self.system.acceleration(0.0 if t is None else t, q, v, u), alpha=self.dt)
            if self.max_speed is not None:
                v = v.clamp(-self.max_speed, self.max_speed)
            return torch.cat([q.add(v, alpha=self.dt), v], dim=1)
        else:
            x_next = _solved_rows(self._simulated_step, x, u, t)
        if self.max_speed is not None:  # the true and the learned dynamics alike: observations stay in their space
            p = self.system.position_dim
            x_next = torch.cat([x_next[:, :p], x_next[:, p:].clamp(-self.max_speed, self.max_speed)], dim=1)
        return x_next

    def _step_grid(self, t: torch.Tensor | None) -> torch.Tensor:
        """``(2,)`` times ``[0, dt]`` of an autonomous step, or ``(N, 2)`` rows ``[t, t + dt]`` from the times ``t: (N,)``."""
        return self._step_times if t is None else torch.stack([t, t + self.dt], dim=1)

    def _learned_step(self, x: torch.Tensor, u: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """The learned model's states ``dt`` after ``x: (N, D)`` (from the times ``t: (N,)``, None: 0), in float64.

        A continuous model solves without ``rollout``'s input checks: the env's states and clipped actions are
        finite and its step times fixed (the checks were a tenth of a learned step of 1024 envs).
        """
        model, u = self.dynamics, u if self.dynamics.control_dim else None
        times = self._step_grid(t)
        if isinstance(model, ContinuousModel) and type(model).rollout is ContinuousModel.rollout:  # not a rollout of its own
            times = times.expand(x.shape[0], 2)
            return model.solve(x, times, None if u is None else u[:, None])[:, 1].to(torch.float64)
        return model.rollout(x, times, u)[:, 1].to(torch.float64)

    def _member_steps(self, x: torch.Tensor, u: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """An ensemble's members' states ``dt`` after ``x: (N, D)``, as ``(N, K D)`` float64 (member-major per row)."""
        model, u = self.dynamics, u if self.dynamics.control_dim else None
        times = self._step_grid(t).expand(x.shape[0], 2)
        members = model.member_rollouts(x, times, None if u is None else u[:, None])[:, :, 1]  # (K, N, D)
        return members.transpose(0, 1).reshape(x.shape[0], -1).to(torch.float64)

    def draw_members(self, rngs) -> None:
        """With ``member="sample"``, draw each state's member from its generator (one per state of the batch)."""
        if self.member == "sample":
            self.members = torch.tensor([int(rng.integers(self.spread_members)) for rng in rngs], device=self.device)

    def _simulated_step(self, x: torch.Tensor, u: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """The true system's states ``dt`` after ``x: (N, D)`` (from the times ``t: (N,)``, None: 0) by
        :func:`physode.simulate` with the env's integrator."""
        return simulate(self.system, x, self._step_grid(t), u=u, method=self.integrator, rtol=self.rtol, atol=self.atol,
                        step_size=self.step_size, device=self.device)[:, 1]

    def transition(self, x, true, u, t=None):
        """One step of a batch from the times ``t: (N,)`` (a time-dependent field; None: an autonomous one):
        ``(x_next, true_next, reward (N,), terminated (N,), diverged (N,) | None)``.

        The states stay tensors on the device; reward, terminated and diverged come back as fresh numpy
        arrays on the host. A sub-env whose step cannot be computed ends its episode (``diverged``) and keeps
        its last state, so every observation stays a number: a state that is not finite or beyond float32's
        range (the observations' type), from a learned model or from the truth (a collision or an unstable
        step under semi-implicit Euler), or a solve that fails (a learned model's, or an n-body close
        encounter beyond an adaptive solver's ``max_steps``). With a reference, either side failing ends
        the episode. ``diverged`` is None when every step could be computed.
        """
        x_next = self.advance(x, u, t=t)
        true_next = None if true is None else self.advance(true, u, learned=False, t=t)
        diverged = None  # the common case: every step could be computed
        observable = self._always_finite or (all_finite(x_next, OBSERVABLE)
                                             and (true_next is None or all_finite(true_next, OBSERVABLE)))
        if not observable:
            bad = ~(x_next.abs() <= OBSERVABLE).all(dim=1)  # NaN compares False
            if true_next is not None:
                bad |= ~(true_next.abs() <= OBSERVABLE).all(dim=1)
                true_next = torch.where(bad[:, None], true, true_next)
            x_next = torch.where(bad[:, None], x, x_next)
            diverged = bad.cpu().numpy()
        ends = self.terminal(x_next)
        terminated = np.zeros(x.shape[0], dtype=bool) if ends is None else ends.cpu().numpy()
        if diverged is not None:
            terminated |= diverged
        return x_next, true_next, self.reward(x, u, x_next).cpu().numpy(), terminated, diverged

    def reference_info(self, x: torch.Tensor, true: torch.Tensor | None, steps=None) -> dict:
        """``true_state`` and ``prediction_error`` of a learned env with a reference, the states' ``time``
        (``steps * dt``, ``steps: (N,)`` counted from each episode's start) of a time-dependent field, and an
        ensemble's ``uncertainty`` (and sampled ``member``)."""
        info = {}
        if self.timed:
            info["time"] = np.asarray(steps, dtype=np.float64) * self.dt
        if self.spread_members:
            info["uncertainty"] = self.spread.cpu().numpy().copy()
            if self.members is not None:
                info["member"] = self.members.cpu().numpy().copy()
        if true is None:
            return info
        error = (x - true).norm(dim=1) / true.norm(dim=1).clamp_min(1e-12)
        return info | {"true_state": true.cpu().numpy().copy(), "prediction_error": error.cpu().numpy().copy()}

    def _times(self, steps) -> torch.Tensor | None:
        """The start times ``(N,)`` of a time-dependent field's step after ``steps: (N,)`` steps; None: an autonomous field."""
        if not self.timed:
            return None
        return torch.from_numpy(np.asarray(steps, dtype=np.float64) * self.dt).to(self.device)

    def start_state(self, rng: np.random.Generator, options) -> np.ndarray:
        """The start ``(D,)``: ``options["state"]`` when given (checked), else :meth:`sample_start`."""
        refuse_unknown_options(options, ("state",))
        if options and "state" in options:
            return self.checked_starts(options["state"], "options['state']", (self.system.state_dim,))
        return np.asarray(self.sample_start(rng), dtype=np.float64)

    def checked_starts(self, states, name: str, shape: tuple) -> np.ndarray:
        """Given start states as float64 numbers of ``shape`` (last axis ``D``): finite, and within ``max_speed``."""
        x = np.asarray(states, dtype=np.float64)
        if x.shape != shape or not np.isfinite(x).all():
            raise PhysodeError(f"{name} must be finite numbers of shape {shape} ({', '.join(self.system.state_names)}), "
                               f"got {states!r}")
        if self.max_speed is not None and (np.abs(x[..., self.system.position_dim:]) > self.max_speed).any():
            raise PhysodeError(f"{name} has a speed beyond this env's max_speed ({self.max_speed:g}), outside its "
                               "observation space; give speeds within it")
        return x.copy()

    # ---- the Gymnasium API of one env ----
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        x = torch.from_numpy(self.start_state(self.np_random, options))[None].to(self.device)
        self.draw_members([self.np_random])
        self.spread = torch.zeros_like(x)  # every member starts from the same state
        self._state = x
        self._true = x.clone() if self.reference else None
        self._steps = 0  # since the reset: the state's time is _steps * dt
        self._trail = [x[0]]  # the states drawn by render (kept where they are until then)
        return self.observe(x)[0], {key: value[0] for key, value in self.reference_info(x, self._true, [0]).items()}

    def step(self, action):
        if self._state is None:
            raise ResetNeeded("call env.reset() before env.step()")
        u = self.clip_actions(action)
        x, true, reward, terminated, diverged = self.transition(self._state, self._true, u, self._times([self._steps]))
        self._state, self._true = x, true
        self._steps += 1
        self._trail = (self._trail + [x[0]])[-200:]
        info = {key: value[0] for key, value in self.reference_info(x, true, [self._steps]).items()}
        if diverged is not None and diverged[0]:
            info["diverged"] = True
        return self.observe(x)[0], float(reward[0]), bool(terminated[0]), False, info

    @property
    def state(self) -> np.ndarray | None:
        """The current state ``(D,)`` in float64, as the dynamics integrate it (the observation is its float32
        copy, with the pendulum's angle wrapped into ``[-pi, pi)``; the state's angle is not wrapped); None
        before the first reset, as in Gymnasium's classic-control envs. Through ``gym.make``'s wrappers:
        ``env.unwrapped.state``."""
        return None if self._state is None else self._state[0].cpu().numpy().copy()

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='rgb_array', e.g. gym.make(id, render_mode='rgb_array')")
            return None
        if self._state is None:
            raise ResetNeeded("call env.reset() before env.render()")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if self._figure is None:
            self._figure = Figure(figsize=(4, 4), dpi=100)
            FigureCanvasAgg(self._figure)
        self._figure.clear()
        ax = self._figure.add_subplot()
        self.trail = torch.stack(self._trail).cpu().numpy()  # (K, D): the last states, for draw
        self.draw(ax, self.trail[-1])
        if self._true is not None:
            ax.set_title("learned (colour) and true (grey)", fontsize=9)
        self._figure.canvas.draw()
        return np.asarray(self._figure.canvas.buffer_rgba())[..., :3].copy()

    def close(self):
        self._figure = None


def _check_model(model, system) -> None:
    """Refuse a learned model that was trained on another system or does not fit its state and controls."""
    refuse_other_system(model, system.spec(), "this env", "use the env of the model's system")
    if getattr(model, "state_dim", None) != system.state_dim:
        raise PhysodeError(f"the model has state_dim {getattr(model, 'state_dim', None)}, the env's {system.name} "
                           f"has {system.state_dim}")
    if model.control_dim not in (0, system.control_dim):
        raise PhysodeError(f"the model takes {model.control_dim} controls, the env's {system.name} {system.control_dim}")


class PhysodeVectorEnv(VectorEnv):
    """``num_envs`` copies of a :class:`PhysodeEnv`, stepped together by one batched torch call.

    Made by ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``. Episodes
    end by the env's termination or after ``max_episode_steps`` (truncation). Autoreset follows
    Gymnasium's default ``NEXT_STEP`` mode: the step after an episode ended resets that sub-env (its
    action is ignored, its reward is 0) and returns the new start. Every sub-env has its own random
    generator, seeded ``seed + i`` by ``reset(seed=seed)`` as in ``SyncVectorEnv``, so sub-env ``i``
    matches a single env reset with ``seed + i`` step for step.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, env: PhysodeEnv, num_envs: int, max_episode_steps=None):
        self.env = env
        self.num_envs = positive_int(num_envs, "num_envs")
        self.max_episode_steps = None if max_episode_steps is None else positive_int(max_episode_steps, "max_episode_steps")
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, self.num_envs)
        self.action_space = batch_space(env.action_space, self.num_envs)
        self.render_mode = None
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._state = self._true = None
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            seeds = _seeds(seed, self.num_envs)
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
            self.action_space.seed(seeds[0])
        refuse_unknown_options(options, ("state", "states"))
        dim = self.env.system.state_dim
        if options and "state" in options and "states" in options:
            raise PhysodeError("give options['state'] (one start for every sub-env) or options['states'] (one each), not both")
        if options and "state" in options:  # as SyncVectorEnv hands the same options to every sub-env
            start = self.env.checked_starts(options["state"], "options['state']", (dim,))
            x = torch.from_numpy(np.tile(start, (self.num_envs, 1))).to(self.env.device)
        elif options and "states" in options:
            x = torch.from_numpy(self.env.checked_starts(options["states"], "options['states']", (self.num_envs, dim)))
            x = x.to(self.env.device)
        else:
            x = torch.from_numpy(self.env.sample_starts(self._rngs)).to(self.env.device)
        self.env.draw_members(self._rngs)
        self.env.spread = torch.zeros_like(x)
        self._state = x
        self._true = x.clone() if self.env.reference else None
        self._elapsed[:] = 0
        self._needs_reset[:] = False
        return self.env.observe(x), self._info(x, self._true)

    def step(self, actions):
        if self._state is None:
            raise ResetNeeded("call envs.reset() before envs.step()")
        index = np.flatnonzero(self._needs_reset)  # NEXT_STEP autoreset of the sub-envs whose episode ended last step
        u = self.env.clip_actions(actions, self.num_envs, ignored=index)
        x, true = self._state, self._true
        if index.size:  # they start afresh: their final states (maybe diverged) are never stepped again
            starts = torch.from_numpy(self.env.sample_starts([self._rngs[i] for i in index])).to(x.device)
            rows = torch.from_numpy(index).to(x.device)
            x, true = _rows_set(x, rows, starts), None if true is None else _rows_set(true, rows, starts)
            if self.env.members is not None:  # and draw their episode's member, after the start, as a single env does
                drawn = self.env.members
                self.env.draw_members([self._rngs[i] for i in index])
                self.env.members = _rows_set(drawn, rows, self.env.members)
        x, true, reward, terminated, diverged = self.env.transition(x, true, u, self.env._times(self._elapsed))
        self._elapsed += 1
        truncated = (self._elapsed >= self.max_episode_steps) if self.max_episode_steps else np.zeros_like(terminated)
        if index.size:  # and this step returns the starts themselves, with reward 0 (the action is ignored)
            x, true = _rows_set(x, rows, starts), None if true is None else _rows_set(true, rows, starts)
            reward[index], terminated[index], truncated[index], self._elapsed[index] = 0.0, False, False, 0
            if self.env.spread is not None and self.env.spread_members:
                self.env.spread = _rows_set(self.env.spread, rows, torch.zeros_like(starts))
            if diverged is not None:
                diverged[index] = False
        self._state, self._true = x, true
        self._needs_reset = terminated | truncated
        info = self._info(x, true)
        if diverged is not None and diverged.any():  # as SyncVectorEnv gathers the sub-envs' info["diverged"] = True
            info["diverged"], info["_diverged"] = diverged, diverged.copy()
        return self.env.observe(x), reward, terminated, truncated, info

    def _info(self, x, true) -> dict:
        """The reference's (and a time-dependent field's) info of every sub-env, each key with Gymnasium's ``_key``
        mask (all set) beside it."""
        info = self.env.reference_info(x, true, self._elapsed)
        return info | {f"_{key}": np.ones(self.num_envs, dtype=bool) for key in info}

    def close_extras(self, **kwargs):
        self.env.close()


def _seeds(seed, n: int) -> list[int | None]:
    """One seed per sub-env, as ``SyncVectorEnv`` hands them out: ``seed + i`` from one integer (a numpy integer
    too), or ``n`` given, each an integer or None (that sub-env unseeded)."""
    def integer(value) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if integer(seed):
        return [int(seed) + i for i in range(n)]
    seeds = list(seed) if isinstance(seed, Sequence | np.ndarray) and not isinstance(seed, str) else None
    if seeds is None or len(seeds) != n or not all(s is None or integer(s) for s in seeds):
        raise PhysodeError(f"seed must be an int or a list of {n} ints or None (one per sub-env), got {seed!r}")
    return [None if s is None else int(s) for s in seeds]


def refuse_unknown_options(options, known) -> None:
    """A PhysodeError for ``reset`` options this env does not read (a misspelt key would be ignored silently)."""
    unknown = sorted(set(options or {}) - set(known))
    if unknown:
        raise PhysodeError(f"unknown reset option(s) {unknown}; this env reads {', '.join(repr(k) for k in known)}")


def _solved_rows(step, x: torch.Tensor, u: torch.Tensor, t: torch.Tensor | None = None, width: int | None = None
                 ) -> torch.Tensor:
    """``step(x, u, t)`` for a batch ``x: (N, D)`` (``t: (N,)`` or None), with NaN rows where it cannot be computed
    (rows of ``width`` numbers where the step returns that many per state; default ``D``).

    One failing row fails a batched solve as a whole (SolverError: non-finite states, or an adaptive
    solver giving up), so the batch is halved until the failing rows are found (a few solves for a few
    such rows); they come back NaN, and :meth:`PhysodeEnv.transition` ends their episodes as diverged.
    """
    try:
        return step(x, u, t)
    except SolverError:
        if x.shape[0] == 1:
            return torch.full((1, width or x.shape[1]), float("nan"), dtype=x.dtype, device=x.device)
        half = x.shape[0] // 2
        early, late = (None, None) if t is None else (t[:half], t[half:])
        return torch.cat([_solved_rows(step, x[:half], u[:half], early, width),
                          _solved_rows(step, x[half:], u[half:], late, width)])


def _rows_set(x: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` with ``x[rows] = values``."""
    x = x.clone()
    x[rows] = values
    return x
