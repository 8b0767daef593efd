"""``physode/Learned-v0``: a trained model as a Gymnasium env, with the truth alongside on request."""

from __future__ import annotations

import copy
from pathlib import Path

from physode import systems
from physode.checkpoint import load_model
from physode.checks import positive_float
from physode.errors import PhysodeError
from physode.integrate import FIXED_METHODS, check_solver
from physode.models import ContinuousModel, DynamicsModel

from .core import PhysodeEnv
from .systems import SystemEnv


class LearnedDynamicsEnv(PhysodeEnv):
    """The env of the system a model was trained on, stepped by the model instead of the true ODE.

    ## Description
    Spaces, reward, starting states, episode end and drawing are those of the true env of the model's
    system (``ENV_CLASSES[name]``: :class:`~physode.envs.PendulumEnv`, :class:`~physode.envs.SpringMassEnv`,
    :class:`~physode.envs.NBodyEnv`, :class:`~physode.envs.CartPoleSwingUpEnv`,
    :class:`~physode.envs.DoublePendulumSwingUpEnv`, built with the system's parameters from the checkpoint,
    or the ``env_class`` given); for a system without one, such as a system of your own, those of
    :class:`~physode.envs.SystemEnv` with the system rebuilt by :func:`physode.system_from_spec` (register your
    class with :func:`physode.register_system` so that its name resolves) and the ``reward`` and ``terminal``
    given here. Each step rolls the learned model out over ``dt`` with the action held constant (zero-order hold). An
    augmented model restarts its extra dimensions at zero every step (only the state is observed).

    With ``reference=True`` the true system is stepped alongside from the same start with the same
    actions (open loop: the learned state is never corrected), and ``info`` carries ``true_state`` and
    ``prediction_error = ||x_hat - x|| / ||x||``, so the drift of the learned model can be watched step by
    step. A prediction that is not finite, or whose solve fails, ends the episode with
    ``info["diverged"] = True`` (and so does a reference whose solve fails).

    An ensemble (``physode train --ensemble K``) steps by its members' mean, or with ``member="sample"`` by one
    member drawn at each reset (as PETS samples a model per trajectory); ``info["uncertainty"]`` ``(D,)`` is the
    members' spread of each step (their standard deviation per state, from the same state), e.g. for a penalty on
    model doubt as MOPO takes it, and ``info["member"]`` the episode's member.

    ## Arguments
    ``gym.make("physode/Learned-v0", checkpoint=PATH_OR_MODEL, reference=False, dt=None, solver=None,
    step_size=None, allow_uncontrolled=False, env_class=None, reward=None, terminal=None, member="mean",
    render_mode=None, **env_kwargs)``:

    * ``checkpoint``: a ``model.pt`` written by :func:`physode.fit`, or a loaded model that carries
      ``system_spec`` (as :func:`physode.load_model` returns it);
    * ``dt``: the step (default: a ResNet step model's own ``dt``, else the true env's default);
    * ``solver``, ``step_size``: step a copy of a continuous model with another solver (e.g. ``"rk4"``; fixed-step
      solvers default to one step of ``dt``), for speed;
    * ``allow_uncontrolled``: a model trained without controls ignores the actions; it is refused
      unless this is True, so that an action never silently does nothing;
    * ``env_class``: the task, a :class:`~physode.envs.PhysodeEnv` subclass that takes the system's parameters as
      keywords (e.g. :class:`~physode.envs.CartPoleBalanceEnv` for a cart-pole model), or
      :class:`~physode.envs.SystemEnv` (or a subclass of it) to give the task by ``reward`` and ``terminal``;
      default: ``ENV_CLASSES`` of the system's name, else ``SystemEnv``;
    * ``reward``, ``terminal``: the task of a ``SystemEnv`` (see there; None: reward 0, no termination);
      refused for a system whose task env defines its own;
    * ``member``: how an ensemble steps, ``"mean"`` or ``"sample"`` (one member per episode);
    * ``env_kwargs``: the true env's other arguments (``integrator`` of the reference, bounds, ``device``: where the
      model runs, which moves a model passed in there too, ...).

    ## Version History
    * v0: initial version.
    """

    def __init__(self, checkpoint=None, *, reference=False, dt=None, solver=None, step_size=None,
                 allow_uncontrolled=False, env_class=None, reward=None, terminal=None, member="mean", render_mode=None,
                 **env_kwargs):
        from . import ENV_CLASSES

        if checkpoint is None:
            raise PhysodeError("LearnedDynamicsEnv needs checkpoint=PATH (a model.pt from physode train) or a loaded model")
        model = checkpoint if isinstance(checkpoint, DynamicsModel) else load_model(Path(checkpoint))
        spec = getattr(model, "system_spec", None)
        if spec is None:
            raise PhysodeError("the model does not say which physode system it was trained on, so there is no true env to "
                               "take its spaces from: a model trained on collected or other outside data has none. Train "
                               "on data from physode simulate (or pass a model.pt of such a run)")
        if not model.control_dim and not allow_uncontrolled:
            raise PhysodeError("the model was trained without controls, so actions would do nothing: train on data "
                               "with controls (physode simulate --controls random) or pass allow_uncontrolled=True")
        clash = sorted(set(env_kwargs) & set(spec["params"]))
        if clash:
            raise PhysodeError(f"{', '.join(clash)} {'is a parameter' if len(clash) == 1 else 'are parameters'} of the "
                               f"{spec['name']} system, whose parameters come from the checkpoint ({spec['params']}); leave "
                               f"{'it' if len(clash) == 1 else 'them'} out")
        if dt is None and hasattr(model, "dt"):
            dt = model.dt
        if dt is not None:
            env_kwargs["dt"] = dt
        if env_class is None:
            env_class = ENV_CLASSES.get(spec["name"], SystemEnv)
        elif not (isinstance(env_class, type) and issubclass(env_class, PhysodeEnv)):
            raise PhysodeError(f"env_class must be a physode env class (e.g. physode.envs.CartPoleBalanceEnv), got {env_class!r}")
        if issubclass(env_class, SystemEnv):  # the generic env: the system itself, and the task given here
            self.task = env_class(systems.system_from_spec(spec), reward, terminal, **env_kwargs)
        else:
            if reward is not None or terminal is not None:
                raise PhysodeError(f"reward= and terminal= give the task of a system without an env of its own; "
                                   f"{env_class.__name__} defines the {spec['name']} task: leave them out, or pass "
                                   "env_class=physode.envs.SystemEnv")
            self.task = env_class(**spec["params"], **env_kwargs)
        task = self.task
        if solver is not None:
            model = _with_solver(model, solver, step_size, task.dt)
        elif step_size is not None:
            raise PhysodeError("step_size sets the steps of solver=...: pass both (e.g. solver='rk4', step_size=0.01)")
        super().__init__(task.system, task.action_bound, dt=task.dt, integrator=task.integrator,
                         step_size=task.step_size, rtol=task.rtol, atol=task.atol, max_speed=task.max_speed,
                         dynamics=model, reference=reference, member=member, render_mode=render_mode,
                         device=task.device)
        self.model = model

    # the task is the true env's
    def observation_bound(self):
        return self.task.observation_bound()

    def sample_start(self, rng):
        return self.task.sample_start(rng)

    def sample_starts(self, rngs):
        return self.task.sample_starts(rngs)

    def reward(self, x, u, x_next):
        return self.task.reward(x, u, x_next)

    def terminal(self, x):
        return self.task.terminal(x)

    def observe(self, x):
        return self.task.observe(x)

    def draw(self, ax, x):
        if self._true is not None:  # the truth in grey underneath
            true = self._true[0].cpu().numpy()
            self.task.trail = true[None]
            self.task.draw(ax, true)
            for artist in (*ax.lines, *ax.collections):  # lines and markers (the spring-mass draws its masses as a scatter)
                artist.set_color("0.6")
        self.task.trail = getattr(self, "trail", x[None])
        self.task.draw(ax, x)


def _with_solver(model, solver: str, step_size, dt: float):
    """A copy of continuous ``model`` that integrates with ``solver`` (fixed-step ones at ``step_size``, default ``dt``)."""
    if not isinstance(model, ContinuousModel):
        raise PhysodeError(f"solver= applies to continuous models; a {type(model).__name__} steps by itself")
    check_solver(solver, default_step=True)  # fixed-step ones default to one step of dt
    model = copy.deepcopy(model)  # the caller's model keeps its own solver
    model.solver = solver
    if solver in FIXED_METHODS:
        model.step_size = dt if step_size is None else positive_float(step_size, "step_size")
    return model
