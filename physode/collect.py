"""Trajectories from any Gymnasium env: ``physode collect --env ID``, or :func:`collect` in Python.

The recorded observations become the states of a :class:`~physode.TrajectoryDataset` (``system_spec``
None, ``meta["source"]`` the env id), the actions its controls (held over each step, as the env holds
them), and the times ``k * dt``. A controlled model trains on it like on simulated data. From physode's own
envs the env's state is recorded instead of its observation: the same numbers in float64, with the
pendulum's angle unwrapped (the observation wraps it into ``[-pi, pi)``, a jump of 2 pi that no ODE follows);
under a wrapper that changes the observations, the wrapper's observations are recorded.

Episodes that end early are kept with their own length (a dataset of trajectories of different lengths,
:attr:`~physode.TrajectoryDataset.lengths`): the dynamics up to a terminal state (a pole that fell, a body that
escaped) are as real as any other. ``meta["ended"]`` says why each one ended. Only an episode with a step that
the env could not compute is left out (a physode env's ``info["diverged"]``, or a non-finite observation).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from .checks import affordable, positive_float, positive_int, seed_value
from .data import TrajectoryDataset, check_fractions, split_codes
from .errors import PhysodeError, PhysodeWarning, unknown_name

#: The policies named by a string (the ``--policy`` choices of ``physode collect``); :func:`collect` also takes a callable.
POLICIES = ("random", "zero")
#: Why a kept episode ended (``meta["ended"]``): the env terminated it (also on the last step: termination counts
#: first), a time limit (or wrapper) truncated it before ``max_steps``, or it ran all ``max_steps`` steps.
ENDINGS = ("terminated", "truncated", "max_steps")
#: How many episodes may diverge, as a multiple of ``episodes``, before :func:`collect` gives up on the env.
MAX_DISCARDED = 10


def collect(env, episodes: int, policy: str | Callable = "random", *, seed: int = 0, max_steps: int | None = None,
            dt: float | None = None, t_train: float | None = None, fractions=(0.8, 0.1, 0.1),
            env_kwargs: dict | None = None, progress: bool = False) -> TrajectoryDataset:
    """Record ``episodes`` episodes of ``env`` (an id or an env with 1-D Box observation and action spaces).

    Every episode runs until the env terminates or truncates it, or for ``max_steps`` steps, and is kept with its
    own length ``L_i = steps + 1 <= max_steps + 1`` (the reset's observation and one per step; an episode that
    terminates on its first step is a trajectory of 2 observations, the least a trajectory has). The dataset's
    grid is ``t = k * dt`` for the longest episode, ``(T,)``; ``x: (N, T, D)`` and ``u: (N, T-1, C)`` are padded
    past each trajectory's end (see :attr:`~physode.TrajectoryDataset.lengths` and
    :meth:`~physode.TrajectoryDataset.trajectory`). When every episode ran ``max_steps`` steps the dataset is
    rectangular, as before.

    Args:
        env: a Gymnasium id (``"Pendulum-v1"``, ``"physode/Pendulum-v0"``, ``"module:id"``) or an env.
        episodes: how many episodes to keep (``N``); diverged ones are replaced by new ones.
        policy: ``"random"`` (uniform over the action space, seeded), ``"zero"`` (zero action, clipped into the
            space), or a callable ``policy(observation: np.ndarray, rng: np.random.Generator) -> action``: given
            the env's observation (what an agent sees, before any recording) and one generator that collect makes
            from ``seed`` (``np.random.default_rng([seed, 5])``, shared by all steps and episodes), it returns an
            action of the action space's shape. An action outside the space is clipped into it before the step:
            the env is given, and the dataset records, the clipped action.
        seed: seeds the env's first reset, the action sampler, the callable policy's generator and the splits;
            the same seed gives the same data.
        max_steps: the most steps per episode (default: the env's ``max_episode_steps``; given an id, the env is
            made with this limit). A given env whose own time limit is shorter truncates every episode there (a
            :class:`~physode.PhysodeWarning` says so; ``meta["ended"]`` records ``"truncated"``).
            An episode with a step the env could not compute (a physode env's ``info["diverged"]``: it keeps the
            last state, a step that never happened; or a non-finite observation) is left out and replaced, and
            ``meta["discarded"]`` counts them; when more than ``10 * episodes`` diverge the env is refused
            (:class:`~physode.PhysodeError`).
        dt: time between steps (default: the env's ``dt`` attribute, as classic-control and MuJoCo envs have).
            Another value than the env's own gives a :class:`~physode.PhysodeWarning`: right for a wrapper that
            repeats each action, but otherwise it relabels the time axis.
        t_train: training horizon (default: half the median episode, on the grid: ``k * dt`` with ``k`` half the
            median number of steps, rounded half up, and at least 1; so when every episode ran an even ``max_steps``
            it is half the episode, ``max_steps * dt / 2``, as for equal-length data before).
        fractions: train / val / test shares of the episodes, as for :meth:`TrajectoryDataset.generate`.
        env_kwargs: keyword arguments of ``gymnasium.make`` when ``env`` is an id (e.g. ``{"checkpoint": "model.pt"}``
            for ``physode/Learned-v0``).
        progress: show a progress bar over the kept episodes.

    Returns:
        A :class:`~physode.TrajectoryDataset` without a system, whose ``meta`` holds ``source`` (the env id),
        ``policy`` (``"random"``, ``"zero"`` or ``"callable:<qualname>"``; also under ``controls``), ``seed``, ``dt``,
        ``t_end`` (the longest episode's end), ``max_steps``, ``episodes`` (kept), ``ended`` (one of
        :data:`ENDINGS` per trajectory, in trajectory order), ``discarded`` (diverged episodes left out),
        ``grid``, ``noise_std`` and ``fractions``.
    """
    max_steps = None if max_steps is None else positive_int(max_steps, "max_steps")
    fractions = check_fractions(fractions)
    if env_kwargs is not None and not isinstance(env, str):
        raise PhysodeError("env_kwargs make an env from its id: pass the id as env, or leave env_kwargs out")
    act, policy_name = _policy(policy)
    if isinstance(env, str):
        env_id = env
        if env_id.startswith("physode/"):
            import physode.envs  # noqa: F401  (registers physode's ids)
        try:  # episodes as long as asked for: the id's own time limit would cut longer ones short
            env = gym.make(env_id, **({} if max_steps is None else {"max_episode_steps": max_steps}), **(env_kwargs or {}))
        except (gym.error.Error, ImportError) as exc:  # ImportError: the "module:id" form with a missing module
            raise PhysodeError(f"env {env_id!r}: {exc}") from None
        except TypeError as exc:  # an argument the env does not take
            raise PhysodeError(f"env {env_id!r} does not take these arguments ({exc}); check env_kwargs "
                               "(--checkpoint is for physode/Learned-v0)") from None
    else:
        env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    episodes = positive_int(episodes, "episodes")
    seed = seed_value(seed)
    for name, space in (("observation", env.observation_space), ("action", env.action_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise PhysodeError(f"collect needs 1-D Box observation and action spaces; {env_id} has the {name} space "
                               f"{space}; wrap the env (e.g. FlattenObservation) or pick a continuous-control env")
    limit = env.spec.max_episode_steps if env.spec else None
    max_steps = max_steps if max_steps is not None else limit
    if max_steps is None:
        raise PhysodeError(f"{env_id} has no max_episode_steps: pass max_steps (steps per episode)")
    if limit is not None and max_steps > limit:  # an env made by the caller, with its time limit
        warnings.warn(f"{env_id} truncates every episode after {limit} steps (its max_episode_steps), before "
                      f"max_steps={max_steps}; the episodes are kept {limit} steps long. For longer ones pass the env id "
                      "(collect then makes it with max_steps as its limit)", PhysodeWarning, stacklevel=2)
    own_dt = getattr(env.unwrapped, "dt", None)
    own_dt = float(own_dt) if isinstance(own_dt, numbers.Real) and not isinstance(own_dt, bool) else None
    if dt is None and own_dt is None:
        raise PhysodeError(f"{env_id} has no dt attribute: pass dt (seconds between steps)")
    dt = positive_float(own_dt if dt is None else dt, "dt")
    if own_dt is not None and not math.isclose(dt, own_dt, rel_tol=1e-6):  # float32 dt attributes agree to 1e-7
        warnings.warn(f"dt={dt:g} differs from the {own_dt:g} s that {env_id} steps (its dt); the recorded times use "
                      f"dt={dt:g}: right for a wrapper that repeats each action, wrong otherwise (then leave dt out)",
                      PhysodeWarning, stacklevel=2)
    affordable(8.0 * episodes * (max_steps + 1) * (2 * env.observation_space.shape[0] + env.action_space.shape[0]),
               f"{episodes} episodes of {max_steps} steps")

    env.action_space.seed(seed)
    space = env.action_space
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    zero = np.clip(np.zeros(space.shape), low, high).astype(space.dtype)
    rng = np.random.default_rng([seed, 5])  # the callable policy's generator ([seed, 1..4] seed data.py's streams)
    recorded = _recorded(env)
    states, actions, ended, discarded = [], [], [], 0
    with tqdm(total=episodes, desc=f"collect {env_id}", unit="episode", disable=not progress) as bar:
        while len(states) < episodes:
            obs, _ = env.reset(seed=seed if not states and not discarded else None)
            xs, us, ending = [recorded(obs)], [], "max_steps"
            diverged = not np.isfinite(xs[0]).all()
            while not diverged and len(us) < max_steps:
                if act is None:
                    action = space.sample() if policy_name == "random" else zero
                else:
                    action = _checked_action(act(np.array(obs, copy=True), rng), space, low, high, policy_name)
                obs, _, terminated, truncated, info = env.step(action)
                us.append(np.clip(np.asarray(action, dtype=np.float64), low, high))
                xs.append(recorded(obs))
                diverged = bool(info.get("diverged", False)) or not np.isfinite(xs[-1]).all()
                if terminated or truncated:
                    ending = "terminated" if terminated else "truncated" if len(us) < max_steps else "max_steps"
                    break
            if diverged:
                discarded += 1
                if discarded > MAX_DISCARDED * episodes:
                    raise PhysodeError(
                        f"{env_id}: {discarded} episodes had a step the env could not compute (info['diverged'] or a "
                        f"non-finite observation) and were left out, against {len(states)} kept of the {episodes} asked "
                        "for; the env's dynamics blow up under this policy: check the env (its integrator or tolerances, "
                        "a learned model), a gentler policy, or a smaller max_steps")
                continue
            states.append(np.stack(xs))
            actions.append(np.stack(us))
            ended.append(ending)
            bar.update(1)
    env.close()
    return _dataset(states, actions, ended, dt=dt, t_train=t_train, fractions=fractions, seed=seed,
                    meta={"source": env_id, "policy": policy_name, "seed": seed, "max_steps": max_steps,
                          "discarded": discarded, "noise_std": 0.0, "controls": policy_name})


def _dataset(states, actions, ended, *, dt, t_train, fractions, seed, meta) -> TrajectoryDataset:
    """The kept episodes (``states[i]: (L_i, D)``, ``actions[i]: (L_i - 1, C)``) as a dataset on the grid ``k * dt``,
    padded with NaN past each one's end (rectangular, without ``lengths``, when all have one length)."""
    sizes = np.array([len(x) for x in states])
    longest = int(sizes.max())
    x = np.full((len(states), longest, states[0].shape[1]), np.nan)
    u = np.full((len(states), longest - 1, actions[0].shape[1]), np.nan)
    for i, (xs, us) in enumerate(zip(states, actions, strict=True)):
        x[i, : len(xs)], u[i, : len(us)] = xs, us
    t = torch.arange(longest, dtype=torch.float64) * dt
    if t_train is None:  # half the median episode, on the grid (scores against the data need that), at least one step
        t_train = float(t[max(1, math.floor(float(np.median(sizes - 1)) / 2 + 0.5))])
    splits = split_codes(len(states), fractions, np.random.default_rng([seed, 4]), keep_test=True)
    meta = {**meta, "dt": dt, "t_end": float(t[-1]), "episodes": len(states), "ended": list(ended), "grid": "regular",
            "fractions": list(fractions)}
    return TrajectoryDataset(t, x, None, u=u, split=splits, t_train=t_train, meta=meta,
                             lengths=None if (sizes == longest).all() else sizes)


def _policy(policy) -> tuple[Callable | None, str]:
    """``policy`` checked: ``(None, name)`` for a named policy, ``(callable, "callable:<qualname>")`` for a callable."""
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise unknown_name("policy", policy, POLICIES)
        return None, policy
    if callable(policy):
        name = getattr(policy, "__qualname__", None) or type(policy).__qualname__
        return policy, f"callable:{name}"
    raise PhysodeError(f"policy must be one of {', '.join(map(repr, POLICIES))} or a callable "
                       f"policy(observation, rng) -> action, got {policy!r}")


def _checked_action(action, space: gym.spaces.Box, low: np.ndarray, high: np.ndarray, name: str) -> np.ndarray:
    """A callable policy's ``action`` as an action of ``space``: its shape, finite, clipped into the bounds."""
    try:
        array = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise PhysodeError(f"policy {name} returned {action!r}, not an action of shape {space.shape}") from None
    if array.shape != space.shape:
        if array.size == math.prod(space.shape) and array.ndim <= 1:  # a scalar for a one-dimensional space
            array = array.reshape(space.shape)
        else:
            raise PhysodeError(f"policy {name} returned an action of shape {array.shape}; the action space {space} "
                               f"takes shape {space.shape}")
    if not np.isfinite(array).all():
        raise PhysodeError(f"policy {name} returned the action {array.tolist()}; actions must be finite numbers")
    return np.clip(array, low, high).astype(space.dtype)


def _recorded(env):
    """What is recorded of each step: a physode env's own state (float64, angles unwrapped), else the observation
    (also of a physode env under a wrapper that changes its observations), always as a fresh float64 copy (an env
    may reuse its observation's buffer)."""
    from physode.envs import PhysodeEnv  # here: physode.envs imports physode

    if isinstance(env.unwrapped, PhysodeEnv) and env.observation_space == env.unwrapped.observation_space:
        return lambda obs: np.array(env.unwrapped.state, dtype=np.float64)
    return lambda obs: np.array(obs, dtype=np.float64)
