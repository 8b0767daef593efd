"""Ground-truth systems and the registry that builds them by name."""

from __future__ import annotations

import dataclasses

from ..errors import FileFormatError, unknown_name
from .base import MechanicalSystem, System
from .nbody import NBody
from .pendulum import Pendulum
from .spring_mass import SpringMass

SYSTEMS: dict[str, type[System]] = {cls.name: cls for cls in (Pendulum, SpringMass, NBody)}


def make_system(name: str, **params) -> System:
    """Build the system called ``name`` (``"pendulum"``, ``"spring_mass"``, ``"nbody"``) with ``params``.

    Unknown names and parameters raise a :class:`~physode.PhysodeError` listing the valid ones.
    """
    if name not in SYSTEMS:
        raise unknown_name("system", name, SYSTEMS)
    cls = SYSTEMS[name]
    valid = [f.name for f in dataclasses.fields(cls.Params)]
    for key in params:
        if key not in valid:
            raise unknown_name(f"parameter for {name}", key, valid)
    return cls(**params)


def system_from_spec(spec) -> System:
    """Rebuild a system from :meth:`System.spec` output (as read back from a file)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(
        spec.get("params", {}), dict
    ):
        raise FileFormatError(f"a system spec must be {{'name': str, 'params': dict}}, got {spec!r}")
    return make_system(spec["name"], **spec.get("params", {}))


__all__ = [
    "SYSTEMS",
    "MechanicalSystem",
    "NBody",
    "Pendulum",
    "SpringMass",
    "System",
    "make_system",
    "system_from_spec",
]
