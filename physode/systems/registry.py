"""The one registry that finds a system by name.

A name resolves, in this order, to

1. a system registered in this session with :func:`register_system` (the built-ins register themselves);
2. a system that an installed package declares in the entry-point group ``physode.systems``, e.g. in its
   ``pyproject.toml``::

       [project.entry-points."physode.systems"]
       my_duffing = "mypkg.systems:MyDuffing"   # the entry point's name is the system's name

   (the package is imported only when its name is asked for).

Files (datasets, checkpoints) name their system by these names only, and reading one never imports a
module named inside it. The command line may also name a system by import path, ``mypkg.systems:Duffing``
(:func:`resolve_system`): importing code that users name on their own command line is theirs to choose.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata

from ..errors import FileFormatError, PhysodeError, UnknownSystemError, unknown_name
from ..checks import check_interface, check_name
from .base import System

#: The entry-point group in which installed packages declare their systems.
ENTRY_POINT_GROUP = "physode.systems"

#: Registered systems by name: a :class:`System` subclass (built from parameters) or a fixed instance (an
#: :class:`~physode.ODESystem`, which has no parameters to build it from).
SYSTEMS: dict[str, type[System] | System] = {}

HOW_TO_REGISTER = ("register it with physode.register_system(YourSystem) before loading, declare it in the "
                   f"{ENTRY_POINT_GROUP!r} entry-point group of an installed package, or on the command line name it "
                   "by import path as module:Class")


def register_system(system, *, replace: bool = False):
    """Register ``system`` (a :class:`System` subclass, or an instance such as an :class:`~physode.ODESystem`)
    under its ``name``, so that :func:`make_system`, files and the command line find it; returns it unchanged
    (so it also works as a class decorator).

    Registering the same object again does nothing; another object under a registered name is refused unless
    ``replace=True``.
    """
    is_class = isinstance(system, type) and issubclass(system, System)
    if not is_class and not isinstance(system, System):
        raise PhysodeError(f"register_system takes a physode.System subclass or instance (e.g. a physode.ODESystem), "
                           f"got {system!r}; subclass physode.System or wrap your function in physode.ODESystem")
    name = check_name(getattr(system, "name", None), system)
    if is_class and system.Params is not None and not dataclasses.is_dataclass(system.Params):
        raise PhysodeError(f"{system.__name__}.Params must be a dataclass of the parameters (or None), got {system.Params!r}")
    if not is_class:
        check_interface(system)
    held = SYSTEMS.get(name)
    if held is not None and held is not system and not replace:
        raise PhysodeError(f"system name {name!r} is already registered to {_describe(held)}; give {_describe(system)} "
                           "another name, or pass replace=True to register_system to replace it")
    SYSTEMS[name] = system
    return system


def refuse_name_clash(system: System) -> None:
    """A PhysodeError when ``system``'s name is registered to another system: files written from it would be read
    back with that other system's physics. An unregistered name is fine (files then need it registered to be read
    with their true system)."""
    held = SYSTEMS.get(system.name)
    if held is not None and held is not type(system) and held is not system:
        raise PhysodeError(f"system name {system.name!r} of {_describe(type(system))} is already taken by {_describe(held)}; "
                           f"give your system another name (e.g. name = 'my_{system.name}'), so that files naming it are "
                           "read back with the right system")


def lookup(name: str):
    """The registered class or instance called ``name``, loading an installed package's entry point if need be;
    None when no system has that name."""
    if name in SYSTEMS:
        return SYSTEMS[name]
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            try:
                target = entry.load()
            except Exception as exc:  # an installed package's import may fail in any way
                raise PhysodeError(f"the installed entry point {entry.name} = {entry.value!r} ({ENTRY_POINT_GROUP}) could not "
                                   f"be loaded: {type(exc).__name__}: {exc}; reinstall the package that declares it") from None
            target = _target_system(target, f"entry point {entry.value!r}")
            if target.name != name:  # files record target.name, which a later session could not find
                raise PhysodeError(f"the installed entry point {entry.name} = {entry.value!r} ({ENTRY_POINT_GROUP}) names a "
                                   f"system called {target.name!r}; the entry point's name must be the system's name: "
                                   f"rename the entry point to {target.name}")
            return register_system(target)
    return None


def known_names() -> list[str]:
    """Every name a system can be looked up by: the registered ones and those of installed entry points."""
    return sorted(set(SYSTEMS) | {entry.name for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def make_system(name, **params) -> System:
    """The system called ``name`` with ``params``: a registered or installed name (``"pendulum"``, ``"lorenz"``,
    ...), or an import path ``"module:Class"`` (imported and registered).

    Unknown names and parameters raise a :class:`~physode.PhysodeError` listing the valid ones.
    """
    if isinstance(name, str) and ":" in name:
        return resolve_system(name, **params)
    return _build(_registered(name), params)


def import_system(text: str):
    """Import the System subclass or instance named by the import path ``module:Class`` and register it; returns it
    (a class unbuilt: files carry its parameters). Only for paths a user gives on their own command line."""
    module_name, _, attribute = text.partition(":")
    if not module_name or not attribute:
        raise PhysodeError(f"system {text!r} must be a name or an import path module:Class, e.g. mypkg.systems:Duffing")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PhysodeError(f"cannot import module {module_name!r} of system {text!r} ({exc}); check the spelling, and "
                           "that its folder is on PYTHONPATH or its package is installed") from None
    except Exception as exc:  # the user's module may fail on import in any way
        raise PhysodeError(f"importing module {module_name!r} of system {text!r} failed: {type(exc).__name__}: {exc}; "
                           "fix the module") from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PhysodeError(f"module {module_name!r} has no {attribute!r} (system {text!r}); name a System subclass or "
                               f"instance defined in it")
        target = getattr(target, part)
    return register_system(_target_system(target, repr(text)))


def resolve_system(text: str, **params) -> System:
    """A system named as the command line names it: a registered or installed name, or an import path
    ``module:Class`` (``module:obj`` for an instance such as an :class:`~physode.ODESystem`), which is imported
    and registered. Only for names a user gives on their own command line, never for names read from a file."""
    if not isinstance(text, str) or ":" not in text:
        return make_system(text, **params)
    return _build(import_system(text), params)


def system_from_spec(spec) -> System:
    """Rebuild a system from :meth:`System.spec` output as read back from a file: by registered or installed name
    only (a file never makes physode import a module). A name that nothing provides raises
    :class:`~physode.UnknownSystemError`, whose message says how to register it."""
    name = spec_name(spec)
    return _build(_registered(name), spec.get("params", {}))


def spec_name(spec) -> str:
    """The system name of a spec ``{"name": str, "params": dict}``, its form checked (a FileFormatError otherwise)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("params", {}), dict):
        raise FileFormatError(f"a system spec must be {{'name': str, 'params': dict}}, got {spec!r}")
    return spec["name"]


def _registered(name):
    if not isinstance(name, str):
        raise PhysodeError(f"system must be named by a string (or be a physode.System), got {name!r}")
    found = lookup(name)
    if found is None:
        valid = ", ".join(repr(v) for v in known_names())
        raise UnknownSystemError(f"unknown system {name!r}; valid choices are: {valid}. For a system of your own, "
                                 f"{HOW_TO_REGISTER}")
    return found


def _build(entry, params: dict) -> System:
    """A system from a registry entry: a class built with ``params`` (checked against its Params fields), or a fixed
    instance (which takes no parameters other than its own)."""
    if isinstance(entry, System):
        own = entry.spec()["params"]
        if params and params != own:
            raise PhysodeError(f"system {entry.name!r} is a fixed instance ({type(entry).__name__}) with parameters {own}; "
                               f"it takes no others, got {params}")
        return entry
    valid = [] if entry.Params is None else [f.name for f in dataclasses.fields(entry.Params)]
    for key in params:
        if key not in valid:
            raise unknown_name(f"parameter for {entry.name}", key, valid)
    try:
        system = entry(**params)
    except PhysodeError:
        raise
    except (TypeError, ValueError) as exc:
        raise PhysodeError(f"building system {entry.name!r} with {params} failed: {exc}") from None
    return check_interface(system)


def _target_system(target, where: str):
    """``target`` if it is a System subclass or instance, else a PhysodeError naming ``where`` it came from."""
    if (isinstance(target, type) and issubclass(target, System)) or isinstance(target, System):
        return target
    raise PhysodeError(f"{where} names {target!r}, which is not a physode.System subclass or instance; point it at a "
                       "subclass of physode.System or at a physode.ODESystem")


def _describe(entry) -> str:
    return f"{entry.__module__}.{entry.__qualname__}" if isinstance(entry, type) else repr(entry)
