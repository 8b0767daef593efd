"""Errors raised by physode.

Every error a user can cause is a :class:`PhysodeError` (a ``ValueError``), and its message names the
argument, the value that was given and what to do instead. The CLI turns one into a single line on
stderr and exit code 2.
"""


class PhysodeError(ValueError):
    """Bad input or a failed operation that the caller can fix; the message says how."""


class UnknownNameError(PhysodeError):
    """A name (system, solver, parameter, ...) that physode does not know; the message lists valid ones."""


class UnknownSystemError(UnknownNameError):
    """A system name that nothing registered or installed provides; the message says how to register one."""


class FileFormatError(PhysodeError):
    """A file that is missing, truncated, corrupt, of another kind or of an unsupported version."""


class DataMisfitError(PhysodeError):
    """A model that the data cannot determine (e.g. a regression library with more terms than samples)."""


class SolverError(PhysodeError):
    """An ODE solve that could not finish (step size underflow, non-finite state)."""


class PhysodeWarning(UserWarning):
    """Something the caller should know about a run that still goes on (e.g. a dataset with an empty split)."""


def unknown_name(kind: str, name: object, valid) -> UnknownNameError:
    """Build the error for an unknown ``name`` of ``kind``, listing the ``valid`` choices."""
    choices = ", ".join(repr(v) for v in sorted(valid))
    return UnknownNameError(f"unknown {kind} {name!r}; valid choices are: {choices}")
