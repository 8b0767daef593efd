"""Derivative matching (collocation): fit a model's field to estimated state derivatives, with no ODE solve.

A regression of ``f_theta(t, x, u)`` on samples ``(t, x, dx/dt, u)`` from :func:`physode.derivatives.estimate_derivatives`
runs at the speed of plain supervised learning, and gets a model most of the way in seconds; trajectory
matching afterwards removes the bias the estimates carry (stencil or smoothing error, noise). Every model
answers ``vector_field``, so one loss serves them all: a neural ODE's field, an augmented ODE's first ``D``
outputs at zero augmentation, a Hamiltonian model's symplectic gradient, and a ResNet step's implied field
``(step(x) - x) / dt``, which fitted to forward differences at the data's own step is the one-step regression
``step(x_k) ~ x_{k+1}``.

The loss is the mean squared error in units of each derivative component's spread, so that fast and slow
states count alike.
"""

from __future__ import annotations

import math
import time

import torch

from .checks import positive_float, positive_int, seed_value
from .derivatives import DerivativeSamples, estimate_derivatives, step_differences
from .errors import PhysodeError
from .models import Ensemble


def field_samples(model, dataset, method: str = "auto") -> DerivativeSamples:
    """The samples ``model`` is fitted to on ``dataset``: forward differences at the data's step for a discrete step
    model (``model.dt``), estimated derivatives (:func:`~physode.derivatives.estimate_derivatives` with ``method``)
    for a continuous one."""
    if hasattr(model, "step") and hasattr(model, "dt"):
        return step_differences(dataset, model.dt)
    return estimate_derivatives(dataset, method)


def fit_field(model, samples: DerivativeSamples, *, steps: int = 2000, batch_size: int = 1024, lr: float = 3e-3,
              seed: int = 0, time_limit: float | None = None, stop=None) -> list[float]:
    """Fit ``model.vector_field`` to ``samples`` by Adam with cosine decay over ``steps`` minibatches of ``batch_size``
    samples (drawn with ``seed``), stopping early after ``time_limit`` seconds or when ``stop()`` (if given) turns
    true. Returns the losses (normalised mean squared errors), one per step taken.

    An :class:`~physode.Ensemble` fits every member's own field (one minibatch for all): its loss is the sum of the
    members' losses, each sample weighted by the member's bootstrap count of the trajectory it comes from
    (``samples.trajectory``; samples that do not say so, or an ensemble without counts, weigh every sample once)."""
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_float(lr, "lr")
    seed = seed_value(seed)
    if len(samples.t) == 0:
        raise PhysodeError("there are no derivative samples to fit; the training data are too short for derivatives")
    device = next(model.parameters()).device
    dtype = model.torch_dtype if hasattr(model, "torch_dtype") else torch.float32
    t, x, dxdt = (v.to(device, dtype) for v in (samples.t, samples.x, samples.dxdt))
    u = None if samples.u is None else samples.u.to(device, dtype)
    ensemble = isinstance(model, Ensemble)
    trajectory = samples.trajectory if ensemble else None
    spread = dxdt.std(0).clamp_min(1e-6 * float(dxdt.abs().max().clamp_min(1e-30)))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses, start = [], time.perf_counter()
    for step in range(steps):
        if (time_limit is not None and time.perf_counter() - start > time_limit) or (stop is not None and stop()):
            break
        drawn = torch.randint(len(t), (min(batch_size, len(t)),), generator=generator)
        rows = drawn.to(device)
        if ensemble:
            fields = model.member_fields(t[rows], x[rows], None if u is None else u[rows])  # (K, B, D)
            errors = (((fields - dxdt[rows]) / spread) ** 2).mean(-1)  # (K, B)
            weights = model.bootstrap_weights(None if trajectory is None else trajectory[drawn])
            loss = (errors if weights is None else errors * weights).mean(-1).sum()
        else:
            field = model.vector_field(t[rows], x[rows], None if u is None else u[rows])
            loss = (((field - dxdt[rows]) / spread) ** 2).mean()
        if not torch.isfinite(loss):
            raise PhysodeError(f"the derivative-matching loss is {loss.item()} at step {step}; lower the warm start's "
                               "learning rate, or turn the warm start off")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses
