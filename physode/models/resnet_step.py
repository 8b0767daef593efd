"""The discrete baseline: a ResNet step map ``x_{k+1} = x_k + g(x_k[, u_k])`` on the data's step ``dt``."""

from __future__ import annotations

import math

import torch

from ..checks import affordable, positive_float
from .base import DynamicsModel
from .vector_field import MLP


class ResNetStep(DynamicsModel):
    """``step(x, u) = x + x_scale * g((x - x_mean) / x_scale, u)``, trained on the data's step ``dt``.

    Its implied vector field is ``(step(x) - x) / dt``. ``rollout`` iterates the step from each
    trajectory's first time; at times that are not whole multiples of ``dt`` after it, the state is
    **linearly interpolated** between the two neighbouring steps (so irregular grids work, with that
    interpolation error). With controls, each step uses the control of the data interval in which it
    starts (zero-order hold).
    """

    def __init__(self, state_dim, dt, hidden=64, depth=2, activation="tanh", control_dim=0, dtype="float32"):
        super().__init__(state_dim, control_dim, dtype)
        self.dt = positive_float(dt, "dt")
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.net = MLP(state_dim + control_dim, state_dim, hidden, depth, activation).to(self.torch_dtype)

    def step(self, x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """One step of length ``dt`` from ``x: (..., D)``."""
        z = self.normalize(x)
        if u is not None:
            z = torch.cat([z, u.to(z.dtype)], dim=-1)
        return x + self.x_scale * self.net(z)

    def vector_field(self, t, x, u=None):
        """The implied field ``(step(x, u) - x) / dt``, computed in the model's dtype and returned in ``x``'s."""
        _, z, u = self._field_inputs(t, x, u)
        return ((self.step(z, u) - z) / self.dt).to(x.dtype)

    def rollout(self, x0, t, u=None):
        """States ``(N, T, D)`` at ``t: (T,) | (N, T)`` from ``x0: (N, D)`` (see the class doc on interpolation)."""
        x0, times, u, single = self._inputs(x0, t, u)
        self._check_field_inputs(x0, None if u is None else u[:, 0])
        elapsed = times - times[:, :1]  # (N, T)
        n_steps = math.ceil(float(elapsed.max()) / self.dt - 1e-9)
        affordable(8.0 * x0.shape[0] * (n_steps + 1) * (self.state_dim + self.control_dim + 1),
                   f"a rollout of {n_steps} ResNet steps of dt={self.dt:g}", "use shorter times or a model of a larger dt")
        states = [x0]
        if u is not None:  # the data interval each step starts in
            step_times = times[:, :1] + self.dt * torch.arange(n_steps, dtype=times.dtype, device=times.device)
            # a step time computed a rounding error short of a knot still starts in the knot's interval
            interval = (torch.searchsorted(times, step_times + 1e-6 * self.dt, right=True) - 1).clamp(0, u.shape[1] - 1)
        for k in range(n_steps):
            uk = None if u is None else u.gather(1, interval[:, k, None, None].expand(-1, 1, u.shape[2])).squeeze(1)
            states.append(self.step(states[-1], uk))
        path = torch.stack(states, dim=1)  # (N, n_steps + 1, D)
        position = (elapsed / self.dt).to(path.dtype)
        below = position.floor().clamp(0, max(n_steps - 1, 0)).long()
        frac = (position - below).unsqueeze(-1)
        index = below.unsqueeze(-1).expand(-1, -1, self.state_dim)
        lower = path.gather(1, index)
        upper = path.gather(1, (index + 1).clamp(max=n_steps))
        y = lower + frac * (upper - lower)
        return y[0] if single else y
