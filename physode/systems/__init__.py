"""Ground-truth systems and the registry that finds them by name (:mod:`physode.systems.registry`)."""

from __future__ import annotations

from .base import MechanicalSystem, System
from .cart_pole import CartPole
from .double_pendulum import DoublePendulum
from .nbody import NBody
from .ode_system import ODESystem
from .pendulum import Pendulum
from .registry import (ENTRY_POINT_GROUP, SYSTEMS, known_names, make_system, register_system, resolve_system,
                       spec_name, system_from_spec)
from .spring_mass import SpringMass

#: The built-in systems, registered under their names.
BUILTIN_SYSTEMS = (Pendulum, SpringMass, NBody, DoublePendulum, CartPole)
for _system in BUILTIN_SYSTEMS:
    register_system(_system)

__all__ = [
    "BUILTIN_SYSTEMS",
    "CartPole",
    "DoublePendulum",
    "ENTRY_POINT_GROUP",
    "SYSTEMS",
    "MechanicalSystem",
    "NBody",
    "ODESystem",
    "Pendulum",
    "SpringMass",
    "System",
    "known_names",
    "make_system",
    "register_system",
    "resolve_system",
    "spec_name",
    "system_from_spec",
]
