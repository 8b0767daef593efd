"""Gymnasium environments for physode's systems and learned models, installed as ``physode.envs``.

``import physode.envs`` registers:

=====================================  ====================================================  =================
id                                     class                                                 max_episode_steps
=====================================  ====================================================  =================
``physode/Pendulum-v0``                :class:`PendulumEnv` (swing-up)                       200
``physode/SpringMass-v0``              :class:`SpringMassEnv` (bring to rest)                200
``physode/NBody-v0``                   :class:`NBodyEnv` (keep the cluster together)         400
``physode/CartPoleBalance-v0``         :class:`CartPoleBalanceEnv` (CartPole-v1's task)      500
``physode/CartPoleSwingUp-v0``         :class:`CartPoleSwingUpEnv` (swing up, balance)       500
``physode/DoublePendulumSwingUp-v0``   :class:`DoublePendulumSwingUpEnv` (swing up, hold)    400
``physode/System-v0``                  :class:`SystemEnv` (any system, your reward)          200
``physode/Learned-v0``                 :class:`LearnedDynamicsEnv` (a trained model)         200
=====================================  ====================================================  =================

Each also has a native vector env, ``gymnasium.make_vec(id, num_envs=N,
vectorization_mode="vector_entry_point")`` (:class:`PhysodeVectorEnv`: one batched torch call steps every
sub-env; autoreset ``NEXT_STEP``). Gymnasium 1.x has no plugin entry points any more; instead
``gymnasium.make("physode.envs:physode/Pendulum-v0")`` imports this package itself.
(A top-level package named ``envs`` would clash with an unrelated PyPI package, hence ``physode.envs``.)
"""

from __future__ import annotations

import gymnasium

from physode.errors import PhysodeError

from .core import INTEGRATORS, InvalidAction, PhysodeEnv, PhysodeVectorEnv, ResetNeeded
from .learned import LearnedDynamicsEnv
from .systems import PENDULUM_V1, NBodyEnv, PendulumEnv, SpringMassEnv, SystemEnv
from .tasks import THETA_THRESHOLD, CartPoleBalanceEnv, CartPoleSwingUpEnv, DoublePendulumSwingUpEnv

#: The true env of each system, by system name: the task a learned model of that system is stepped in
#: (:class:`LearnedDynamicsEnv`; its ``env_class`` picks another, e.g. :class:`CartPoleBalanceEnv`). A system
#: without an entry gets :class:`SystemEnv`. The cart-pole's is the swing-up: its states span the swings about
#: hanging down that the cart-pole's own initial-state distribution (the data a model learns from) covers, where
#: the balance task would only visit the few degrees around upright, which that data never reaches.
ENV_CLASSES = {"pendulum": PendulumEnv, "spring_mass": SpringMassEnv, "nbody": NBodyEnv,
               "cart_pole": CartPoleSwingUpEnv, "double_pendulum": DoublePendulumSwingUpEnv}
#: Registered ids: class and episode length.
ENV_IDS = {
    "physode/Pendulum-v0": (PendulumEnv, 200),
    "physode/SpringMass-v0": (SpringMassEnv, 200),
    "physode/NBody-v0": (NBodyEnv, 400),
    "physode/CartPoleBalance-v0": (CartPoleBalanceEnv, 500),
    "physode/CartPoleSwingUp-v0": (CartPoleSwingUpEnv, 500),
    "physode/DoublePendulumSwingUp-v0": (DoublePendulumSwingUpEnv, 400),
    "physode/System-v0": (SystemEnv, 200),
    "physode/Learned-v0": (LearnedDynamicsEnv, 200),
}


def _vector_entry_point(env_class):
    def make(num_envs: int = 1, max_episode_steps=None, render_mode=None, **kwargs) -> PhysodeVectorEnv:
        if render_mode is not None:
            raise PhysodeError(f"the batched vector env draws nothing (render_mode={render_mode!r}): render a single "
                               "env, or make the vector env with vectorization_mode='sync'")
        return PhysodeVectorEnv(env_class(**kwargs), num_envs, max_episode_steps)

    make.__doc__ = f"``num_envs`` batched :class:`{env_class.__name__}` (see :class:`PhysodeVectorEnv`)."
    return make


for _id, (_class, _steps) in ENV_IDS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(_id, entry_point=_class, vector_entry_point=_vector_entry_point(_class),
                           max_episode_steps=_steps)

__all__ = [
    "ENV_CLASSES",
    "ENV_IDS",
    "INTEGRATORS",
    "InvalidAction",
    "ResetNeeded",
    "PENDULUM_V1",
    "THETA_THRESHOLD",
    "CartPoleBalanceEnv",
    "CartPoleSwingUpEnv",
    "DoublePendulumSwingUpEnv",
    "LearnedDynamicsEnv",
    "NBodyEnv",
    "PendulumEnv",
    "PhysodeEnv",
    "PhysodeVectorEnv",
    "SpringMassEnv",
    "SystemEnv",
]
