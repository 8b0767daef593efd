"""What every dynamics model shares: shapes, normalisation, configuration, and the ``rollout`` call.

Two families answer ``rollout(x0, t, u=None) -> (N, T, D)`` and ``vector_field(t, x, u=None)``:

* :class:`ContinuousModel` integrates a learned field with torchdiffeq (any method, optionally the
  adjoint), one batched solve over per-trajectory grids (:mod:`physode.integrate`), and counts
  function evaluations (NFE);
* discrete step models (:class:`~physode.models.ResNetStep`) iterate a learned map.

Normalisation: ``x_mean`` and ``x_scale`` (buffers, saved with the weights) map states to
``z = (x - x_mean) / x_scale`` before the network; fields are learned in those units
(``dx/dt = x_scale * g(z)``). They default to 0 and 1; the trainer sets them from the training split.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..checks import as_float_tensor, positive_float, positive_int, rollout_inputs
from ..errors import PhysodeError, unknown_name
from ..integrate import check_solver, solve_on_grids

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DynamicsModel(nn.Module):
    """Base of all learned models. Subclasses call ``super().__init__(state_dim, control_dim, dtype)``."""

    def __init__(self, state_dim: int, control_dim: int = 0, dtype: str = "float32"):
        super().__init__()
        self.state_dim = positive_int(state_dim, "state_dim")
        self.control_dim = positive_int(control_dim, "control_dim", minimum=0)
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise unknown_name("dtype", dtype, DTYPES)
        self.dtype = dtype  # the name, as in config(); torch_dtype is the torch.dtype
        self.register_buffer("x_mean", torch.zeros(self.state_dim, dtype=DTYPES[dtype]))
        self.register_buffer("x_scale", torch.ones(self.state_dim, dtype=DTYPES[dtype]))

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def config(self) -> dict:
        """The constructor's arguments, as plain data: ``type(model)(**model.config())`` rebuilds it."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_config(cls, config: dict) -> DynamicsModel:
        """A fresh model of what :meth:`config` returned (``cls(**config)``; an ensemble rebuilds its members)."""
        return cls(**config)

    def set_normalization(self, mean, scale) -> None:
        """Set ``x_mean`` and ``x_scale`` (each ``(D,)``; ``scale > 0``)."""
        mean = as_float_tensor(mean, "mean").to(self.torch_dtype)
        scale = as_float_tensor(scale, "scale").to(self.torch_dtype)
        if mean.shape != (self.state_dim,) or scale.shape != (self.state_dim,) or not bool((scale > 0).all()):
            raise PhysodeError(f"normalisation needs mean and scale of shape ({self.state_dim},) with scale > 0")
        self.x_mean.copy_(mean)
        self.x_scale.copy_(scale)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_scale

    def _inputs(self, x0, t, u):
        """Checked ``(x0 (N, D), times (N, T), u (N, T-1, C) | None, single)``, states and controls in the model's dtype."""
        x0, times, u, single = rollout_inputs(x0, t, u, self.state_dim, self.control_dim)
        x0, u = self._on_model(x0, u)
        return x0, times.to(self.x_mean.device), u, single

    def _field_inputs(self, t, x, u):
        """Checked ``(t, x, u)`` of a field evaluation, in the model's dtype and on its device (``t`` a number or
        a tensor that broadcasts against ``x.shape[:-1]``)."""
        self._check_field_inputs(x, u)
        x, u = self._on_model(x, u)
        t = as_float_tensor(t, "t").to(x.device, x.dtype)
        try:
            fits = torch.broadcast_shapes(t.shape, x.shape[:-1]) == x.shape[:-1]
        except RuntimeError:
            fits = False
        if not fits:
            raise PhysodeError(f"t must be a number or broadcast against x's leading shape {tuple(x.shape[:-1])}, "
                               f"got shape {tuple(t.shape)}")
        return t, x, u

    def _on_model(self, x, u):
        """``x`` and ``u`` (or None) in the model's dtype, on its device."""
        device = self.x_mean.device
        return x.to(device, self.torch_dtype), None if u is None else u.to(device, self.torch_dtype)

    def _check_field_inputs(self, x, u):
        if x.shape[-1] != self.state_dim:
            raise PhysodeError(f"x must have last dimension {self.state_dim} for this model, got shape {tuple(x.shape)}")
        if self.control_dim and u is None:
            raise PhysodeError(f"this model takes controls: pass u with last dimension {self.control_dim}")
        if u is not None and u.shape[-1] != self.control_dim:
            raise PhysodeError(f"u must have last dimension {self.control_dim} for this model, got shape {tuple(u.shape)}")


class ContinuousModel(DynamicsModel):
    """A learned ODE ``dz/dt = flow(t, z, u)`` integrated by torchdiffeq.

    Args:
        solver: a torchdiffeq method: adaptive (``"dopri5"``, ``"dopri8"``, ``"bosh3"``, ...) or fixed-step
            (``"rk4"``, ``"euler"``, ... with ``step_size``).
        rtol, atol: tolerances of adaptive solvers (met by every trajectory in the batch on its own).
        step_size: step of fixed-step solvers (each output interval is split into equal substeps).
        adjoint: train with ``odeint_adjoint`` (memory constant in the number of solver steps).
        seminorm: with the adjoint, control the backward solve's error on the state and its adjoint
            only, not on the parameter gradients (Kidger et al. 2021: fewer backward steps).
        max_steps: most solver steps per output interval; a solve needing more raises a SolverError.

    NFE: ``nfe_forward`` counts the field evaluations of the last ``rollout``; ``nfe_backward`` those
    made since by its backward pass (the adjoint solve; 0 for direct backprop, which re-evaluates
    nothing); ``nfe_total`` all evaluations so far.
    """

    def __init__(self, state_dim, control_dim=0, dtype="float32", *, solver="dopri5", rtol=1e-6, atol=1e-7,
                 step_size=None, adjoint=False, seminorm=False, max_steps=10_000):
        super().__init__(state_dim, control_dim, dtype)
        self.solver = check_solver(solver, step_size)
        self.rtol, self.atol = positive_float(rtol, "rtol"), positive_float(atol, "atol")
        self.step_size = None if step_size is None else positive_float(step_size, "step_size")
        self.adjoint, self.seminorm = bool(adjoint), bool(seminorm)
        self.max_steps = positive_int(max_steps, "max_steps")
        self.nfe_total = 0
        self.nfe_forward = 0
        self._after_forward = 0

    @property
    def nfe_backward(self) -> int:
        """Field evaluations since the last rollout finished (its backward pass, when one ran)."""
        return self.nfe_total - self._after_forward

    def flow(self, t, z: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """The field that is integrated, on the solver's state ``z``; subclasses implement it."""
        raise NotImplementedError

    def inference_flow(self):
        """``flow`` for a run of evaluations with fixed weights and no gradients (a solve under ``no_grad``): ``flow``
        itself, or a faster equivalent with its weights prepared once."""
        return self.flow

    def _counted(self, flow):
        """``flow`` counting its evaluations in ``nfe_total``."""
        def counted(t, z, u):
            self.nfe_total += 1
            return flow(t, z, u)
        return counted

    def initial_solver_state(self, x0: torch.Tensor) -> torch.Tensor:
        """The solver's state at the first time from ``x0: (N, D)`` (augmented models pad it)."""
        return x0

    def vector_field(self, t, x, u=None):
        """``dx/dt`` at states ``x: (..., D)`` with controls ``u: (..., C)``, computed in the model's dtype and
        returned in ``x``'s; not counted in NFE."""
        t, z, u = self._field_inputs(t, x, u)
        return self.flow(t, self.initial_solver_state(z), u)[..., : self.state_dim].to(x.dtype)

    def rollout(self, x0, t, u=None):
        """Trajectories ``(N, T, D)`` from ``x0: (N, D)`` on ``t: (T,) | (N, T)``, one batched solve.

        ``u``: None, ``(N, C)`` constant or ``(N, T-1, C)`` held over each interval (zero-order hold).
        """
        x0, times, u, single = self._inputs(x0, t, u)
        y = self.solve(x0, times, u)
        return y[0] if single else y

    def solve(self, x0: torch.Tensor, times: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`rollout` without its input checks, for inputs already in the form it brings them to.

        ``x0: (N, D)`` finite, ``times: (N, T)`` finite and strictly increasing along each row (float64, on the
        model's device), ``u: (N, T-1, C)`` finite or None; states and controls of any float dtype (converted to
        the model's). For a caller that steps the model many times with inputs it owns and has checked (the
        learned env); anything else calls :meth:`rollout`.
        """
        x0, u = self._on_model(x0, u)
        if self.control_dim and u is None:
            raise PhysodeError(
                f"this model takes controls: pass u of shape (N, {self.control_dim}) or (N, T-1, {self.control_dim})"
            )
        start = self.nfe_total
        flow = self.flow if torch.is_grad_enabled() else self.inference_flow()
        y = solve_on_grids(
            self._counted(flow), self.initial_solver_state(x0), times, u, method=self.solver, rtol=self.rtol,
            atol=self.atol, step_size=self.step_size, max_steps=self.max_steps, adjoint=self.adjoint,
            adjoint_options={"norm": "seminorm"} if self.seminorm else None, module=self,
        )[..., : self.state_dim]
        self.nfe_forward = self.nfe_total - start
        self._after_forward = self.nfe_total
        return y
