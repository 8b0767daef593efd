"""Ground-truth systems and the registry that finds them by name (:mod:`physode.systems.registry`)."""

from __future__ import annotations

from .base import MechanicalSystem, System
from .cart_pole import CartPole
from .double_pendulum import DoublePendulum
from .duffing import Duffing
from .lorenz import Lorenz
from .nbody import NBody
from .ode_system import ODESystem
from .pendulum import Pendulum
from .registry import (ENTRY_POINT_GROUP, SYSTEMS, import_system, known_names, make_system, register_system, resolve_system,
                       spec_name, system_from_spec)
from .spring_mass import SpringMass
from .van_der_pol import VanDerPol

#: The built-in systems, registered under their names.
BUILTIN_SYSTEMS = (Pendulum, SpringMass, NBody, DoublePendulum, CartPole, VanDerPol, Duffing, Lorenz)
for _system in BUILTIN_SYSTEMS:
    register_system(_system)

__all__ = [
    "BUILTIN_SYSTEMS",
    "CartPole",
    "DoublePendulum",
    "Duffing",
    "Lorenz",
    "ENTRY_POINT_GROUP",
    "SYSTEMS",
    "MechanicalSystem",
    "NBody",
    "ODESystem",
    "Pendulum",
    "SpringMass",
    "VanDerPol",
    "System",
    "import_system",
    "known_names",
    "make_system",
    "register_system",
    "resolve_system",
    "spec_name",
    "system_from_spec",
]
