"""A Hamiltonian neural network (Greydanus et al. 2019): ``dx/dt = J grad H_theta(x)`` for conservative systems."""

from __future__ import annotations

import numbers

import torch

from ..errors import PhysodeError
from .base import ContinuousModel
from .vector_field import MLP


class HamiltonianODE(ContinuousModel):
    """A learned scalar ``H_theta(q, p)`` whose symplectic gradient is the field.

    The state is split in halves ``x = (q, p)``; ``dq/dt = dH/dp``, ``dp/dt = -dH/dq``, so the learned
    dynamics conserve ``H_theta`` exactly (up to the solver): the physics prior that a plain neural
    ODE lacks. For physode's systems the second half is the velocity, which is a valid momentum up to
    a constant mass factor that ``H_theta`` absorbs. With ``control_dim > 0`` a learned linear input
    ``B u`` is added to ``dp/dt`` (a port-Hamiltonian force).
    """

    def __init__(self, state_dim, hidden=64, depth=2, activation="tanh", control_dim=0, solver="dopri5",
                 rtol=1e-6, atol=1e-7, step_size=None, adjoint=False, seminorm=False, max_steps=10_000,
                 dtype="float32"):
        if isinstance(state_dim, bool) or not isinstance(state_dim, numbers.Integral) or state_dim < 2 or state_dim % 2:
            raise PhysodeError(f"HamiltonianODE needs an even state_dim (q and p halves), got {state_dim!r}")
        super().__init__(state_dim, control_dim, dtype, solver=solver, rtol=rtol, atol=atol, step_size=step_size,
                         adjoint=adjoint, seminorm=seminorm, max_steps=max_steps)
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.net = MLP(state_dim, 1, hidden, depth, activation).to(self.torch_dtype)
        torch.nn.init.normal_(self.net[-1].weight, std=0.01)  # a zero H would have a zero gradient everywhere
        # H's constant offset has no gradient, so no part in the field: frozen, it is no trainable parameter (under
        # DistributedDataParallel a parameter that never gets a gradient stops training at its second step)
        self.net[-1].bias.requires_grad_(False)
        self.control_input = None
        if control_dim:
            self.control_input = torch.nn.Linear(control_dim, state_dim // 2, bias=False).to(self.torch_dtype)

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        """``H_theta(x)`` for states ``x: (..., D)``, shape ``(...)``."""
        return self.net(self.normalize(x)).squeeze(-1)

    def flow(self, t, z, u):
        differentiable = torch.is_grad_enabled()
        # the field is a gradient: autograd runs even where the caller records nothing (no_grad, or inference
        # mode, as in the learned env's step, whose tensors autograd cannot use: their clone made outside it can)
        with torch.inference_mode(False), torch.enable_grad():
            x = z.clone() if z.is_inference() else z
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.hamiltonian(x).sum(), x, create_graph=differentiable)
        half = self.state_dim // 2
        dq, dp = grad[..., half:], -grad[..., :half]
        if self.control_input is not None and u is not None:
            dp = dp + self.control_input(u.to(z.dtype))
        return torch.cat([dq, dp], dim=-1)
