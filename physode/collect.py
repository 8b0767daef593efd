"""Trajectories from any Gymnasium env: ``physode collect --env ID``, or :func:`collect` in Python.

The recorded observations become the states of a :class:`~physode.TrajectoryDataset` (``system_spec``
None, ``meta["source"]`` the env id), the actions its controls (held over each step, as the env holds
them), and the times ``k * dt``. A controlled model trains on it like on simulated data. From physode's own
envs the env's state is recorded instead of its observation: the same numbers in float64, with the
pendulum's angle unwrapped (the observation wraps it into ``[-pi, pi)``, a jump of 2 pi that no ODE follows);
under a wrapper that changes the observations, the wrapper's observations are recorded.
"""

from __future__ import annotations

import math
import numbers
import warnings

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from .checks import affordable, positive_float, positive_int, seed_value
from .data import TrajectoryDataset, _fractions, _split_codes
from .errors import PhysodeError, PhysodeWarning, unknown_name

POLICIES = ("random", "zero")


def collect(env, episodes: int, policy: str = "random", *, seed: int = 0, max_steps: int | None = None,
            dt: float | None = None, t_train: float | None = None, fractions=(0.8, 0.1, 0.1),
            env_kwargs: dict | None = None, progress: bool = False) -> TrajectoryDataset:
    """Record ``episodes`` episodes of ``env`` (an id or an env with Box observation and action spaces).

    Args:
        env: a Gymnasium id (``"Pendulum-v1"``, ``"physode/Pendulum-v0"``, ``"module:id"``) or an env.
        episodes: how many episodes to record; each lasts ``max_steps`` steps.
        policy: ``"random"`` (uniform over the action space, seeded) or ``"zero"`` (zero action, clipped
            into the space).
        seed: seeds the env's first reset and the action sampler; the same seed gives the same data.
        max_steps: steps per episode (default: the env's ``max_episode_steps``; given an id, the env is made
            with this limit, while a given env must allow that many). Episodes that
            terminate earlier are left out (a dataset holds equal-length trajectories), and so are episodes
            with a step the env could not compute (a physode env's ``info["diverged"]``: it keeps the last state,
            a step that never happened); ``meta["discarded"]`` counts them.
        dt: time between steps (default: the env's ``dt`` attribute, as classic-control envs have). Another value
            than the env's own gives a :class:`~physode.PhysodeWarning`: right for a wrapper that repeats each
            action, but otherwise it relabels the time axis.
        t_train, fractions: as for :meth:`TrajectoryDataset.generate` (default ``t_train`` half the episode).
        env_kwargs: keyword arguments of ``gymnasium.make`` when ``env`` is an id (e.g. ``{"checkpoint": "model.pt"}``
            for ``physode/Learned-v0``).
    """
    max_steps = None if max_steps is None else positive_int(max_steps, "max_steps")
    fractions = _fractions(fractions)
    if env_kwargs is not None and not isinstance(env, str):
        raise PhysodeError("env_kwargs make an env from its id: pass the id as env, or leave env_kwargs out")
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
    if policy not in POLICIES:
        raise unknown_name("policy", policy, POLICIES)
    for name, space in (("observation", env.observation_space), ("action", env.action_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise PhysodeError(f"collect needs 1-D Box observation and action spaces; {env_id} has the {name} space "
                               f"{space}; wrap the env (e.g. FlattenObservation) or pick a continuous-control env")
    limit = env.spec.max_episode_steps if env.spec else None
    max_steps = max_steps if max_steps is not None else limit
    if max_steps is None:
        raise PhysodeError(f"{env_id} has no max_episode_steps: pass max_steps (steps per episode)")
    if limit is not None and max_steps > limit:  # an env made by the caller, with its time limit
        raise PhysodeError(f"{env_id} ends every episode after {limit} steps (its max_episode_steps), so no episode "
                           f"reaches max_steps={max_steps}; pass max_steps <= {limit}, or the env id (collect then makes "
                           "it with that limit)")
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
    low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    zero = np.clip(np.zeros(env.action_space.shape), low, high).astype(env.action_space.dtype)
    recorded = _recorded(env)
    states, actions, discarded = [], [], 0
    with tqdm(total=episodes, desc=f"collect {env_id}", unit="episode", disable=not progress) as bar:
        while len(states) < episodes:
            obs, _ = env.reset(seed=seed if not states and not discarded else None)
            xs, us, diverged = [recorded(obs)], [], False
            for _ in range(max_steps):
                action = env.action_space.sample() if policy == "random" else zero
                obs, _, terminated, truncated, info = env.step(action)
                us.append(np.clip(np.asarray(action, dtype=np.float64), low, high))
                xs.append(recorded(obs))
                diverged = bool(info.get("diverged", False))
                if terminated or diverged or (truncated and len(us) < max_steps):
                    break
            if len(us) < max_steps or diverged:
                discarded += 1
                if discarded > 10 * episodes:
                    raise PhysodeError(f"{env_id}: {discarded} episodes ended before {max_steps} steps or diverged; "
                                       "pass a smaller max_steps")
                continue
            states.append(xs)
            actions.append(us)
            bar.update(1)
    env.close()
    t = torch.arange(max_steps + 1, dtype=torch.float64) * dt
    splits = _split_codes(episodes, fractions, np.random.default_rng([seed, 4]))
    meta = {"source": env_id, "policy": policy, "seed": seed, "dt": dt, "t_end": float(t[-1]),
            "episodes": episodes, "discarded": discarded, "grid": "regular", "noise_std": 0.0,
            "controls": policy, "fractions": list(fractions)}
    return TrajectoryDataset(t, np.array(states), None, u=np.array(actions), split=splits,
                             t_train=float(t[-1]) / 2 if t_train is None else t_train, meta=meta)


def _recorded(env):
    """What is recorded of each step: a physode env's own state (float64, angles unwrapped), else the observation
    (also of a physode env under a wrapper that changes its observations)."""
    from physode.envs import PhysodeEnv  # here: physode.envs imports physode

    if isinstance(env.unwrapped, PhysodeEnv) and env.observation_space == env.unwrapped.observation_space:
        return lambda obs: env.unwrapped.state
    return lambda obs: np.asarray(obs, dtype=np.float64)
