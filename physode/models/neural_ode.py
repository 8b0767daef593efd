"""The neural ODE of Chen et al. (2018): ``dx/dt = f_theta(x[, u][, t])`` with an MLP ``f_theta``."""

from __future__ import annotations

import torch

from .base import ContinuousModel
from .vector_field import MLP


class NeuralODE(ContinuousModel):
    """A learned vector field ``dx/dt = x_scale * g((x - x_mean) / x_scale, u, t)``, integrated by torchdiffeq.

    Args:
        state_dim: ``D``.
        hidden, depth, activation: the MLP ``g`` (see :class:`~physode.models.MLP`).
        time_dependent: feed ``t`` to ``g`` (non-autonomous dynamics).
        control_dim: ``C``; with ``C > 0`` ``g`` also takes the control, held constant over each interval.
        dtype: ``"float32"`` (default) or ``"float64"``.
        solver, rtol, atol, step_size, adjoint, seminorm, max_steps: see :class:`ContinuousModel`.
    """

    _FOLDED_AS_DEFINED = True  #: inference_flow folds this very class (set again by each class whose flow it copies)

    def __init__(self, state_dim, hidden=64, depth=2, activation="tanh", time_dependent=False, control_dim=0,
                 solver="dopri5", rtol=1e-6, atol=1e-7, step_size=None, adjoint=False, seminorm=False,
                 max_steps=10_000, dtype="float32"):
        super().__init__(state_dim, control_dim, dtype, solver=solver, rtol=rtol, atol=atol, step_size=step_size,
                         adjoint=adjoint, seminorm=seminorm, max_steps=max_steps)
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.time_dependent = bool(time_dependent)
        self.net = MLP(self.solver_dim + control_dim + self.time_dependent, self.solver_dim, hidden, depth,
                       activation).to(self.torch_dtype)

    @property
    def solver_dim(self) -> int:
        """Dimension of the integrated state (``D``; ``D + k`` for augmented models)."""
        return self.state_dim

    def _network_input(self, t, z, u):
        parts = [self._normalize_solver_state(z)]
        if u is not None:
            parts.append(u.to(z.dtype))
        if self.time_dependent:
            t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
            parts.append(t.expand(z.shape[:-1]).unsqueeze(-1) if t.ndim <= z.ndim - 1 else t)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def _normalize_solver_state(self, z):
        return self.normalize(z)

    def _scale_output(self, dz):
        return self.x_scale * dz

    def flow(self, t, z, u):
        return self._scale_output(self.net(self._network_input(t, z, u)))

    def inference_flow(self):
        """``flow`` with the weights folded (a ``tanh`` network on the CPU, see :meth:`MLP.sigmoid_form
        <physode.models.MLP.sigmoid_form>`: kept between solves until a weight or the normalisation changes).

        The network runs as itself (``flow``) where folding would skip something: a subclass (the fold copies
        ``flow`` as this class and :class:`AugmentedNeuralODE` define it, which a subclass may change in any of its
        parts), forward hooks on the network or its layers (weight norm and pruning are such hooks), or
        weights cast away from the model's dtype.
        """
        if (not type(self).__dict__.get("_FOLDED_AS_DEFINED") or self.net.activation != "tanh"
                or self.x_mean.device.type != "cpu" or _hooked(self.net)):
            return self.flow
        if self.x_mean.dtype != self.torch_dtype or self.net[0].weight.dtype != self.torch_dtype:  # model.double()
            return self.flow
        # the state's first D coordinates are normalised and scaled; an augmented model's extra ones are not
        return _FoldedFlow(self, self.net.sigmoid_form(self.x_mean, self.x_scale, self.x_scale))


def _hooked(net: torch.nn.Sequential) -> bool:
    """Whether the network or one of its layers has forward hooks, which a folded network would not run."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in (net, *net))


class _FoldedFlow:
    """A :class:`NeuralODE`'s ``flow`` as its network's :class:`~physode.models.SigmoidForm` with the normalisation
    folded in, for one solve.

    A control is folded into the first layer's bias once for every run of evaluations that pass the same
    tensor (a solve over one interval hands the same control to all of them).
    """

    def __init__(self, model: NeuralODE, net):
        self.net, self.dim, self.time_dependent = net, model.solver_dim, model.time_dependent
        self.time_column = model.solver_dim + model.control_dim
        self.u = self.bias = None

    def __call__(self, t, z, u):
        if u is None and not self.time_dependent:
            return self.net(z)
        if u is not None and u is not self.u:
            self.u, self.bias = u, self.net.first_layer_bias(u.to(z.dtype), self.dim)
        bias = self.net.first_bias if u is None else self.bias
        if self.time_dependent:
            t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
            t = t.expand(z.shape[:-1]) if t.ndim <= z.ndim - 1 else t[..., 0]
            bias = bias + t.reshape(-1, 1) * self.net.first_weight[self.time_column]
        return self.net(z, bias)
