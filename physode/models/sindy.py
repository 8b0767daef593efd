"""A sparse-regression baseline (SINDy, Brunton, Proctor & Kutz 2016): ``dx/dt = Theta(x, u) Xi`` with a sparse ``Xi``.

The library ``Theta`` holds a constant, the monomials of the states and controls up to ``degree`` and, for each
of them, ``sin(k z)`` and ``cos(k z)`` for ``k = 1..frequencies``. Its coefficients are fitted to estimated
state derivatives (:func:`physode.derivatives.estimate_derivatives`) by pysindy's sequentially thresholded least
squares (STLSQ), which the optional extra provides (``pip install "physode[sindy]"``); the fitted model is then
an ordinary continuous model (its rollouts integrate ``Theta Xi`` with torchdiffeq) whose equations can be read.
It works in the data's own units (no normalisation), so that its coefficients are the equations' own.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch

from ..checks import positive_float, positive_int
from ..errors import DataMisfitError, PhysodeError
from .base import ContinuousModel

INSTALL = 'the sindy model needs pysindy, an optional extra: pip install "physode[sindy]"'


def has_pysindy() -> bool:
    """Whether the optional extra is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("pysindy") is not None


def require_pysindy():
    """The pysindy module, or a PhysodeError that says how to install it."""
    try:
        import pysindy
    except ImportError:
        raise PhysodeError(INSTALL) from None
    return pysindy


class SINDy(ContinuousModel):
    """``dx/dt = Theta([x, u]) @ coefficients`` with a library of polynomials and sines/cosines (see the module doc).

    Args:
        state_dim: ``D``; control_dim: ``C``.
        degree: the largest total degree of the monomials (default 3).
        frequencies: sines and cosines of each input at ``1..frequencies`` (default 1; 0: none).
        threshold: STLSQ's threshold: coefficients smaller in magnitude are set to zero (default 0.05).
        solver, rtol, atol, ...: the rollouts' solver, see :class:`ContinuousModel`.

    ``coefficients: (F, D)`` (a buffer: fitted by :meth:`fit_samples`, not by gradients) holds ``Xi``;
    :meth:`equations` writes it out.
    """

    def __init__(self, state_dim, degree=3, frequencies=1, threshold=0.05, control_dim=0, solver="dopri5", rtol=1e-7,
                 atol=1e-8, step_size=None, adjoint=False, seminorm=False, max_steps=10_000, dtype="float64"):
        super().__init__(state_dim, control_dim, dtype, solver=solver, rtol=rtol, atol=atol, step_size=step_size,
                         adjoint=adjoint, seminorm=seminorm, max_steps=max_steps)
        self.degree = positive_int(degree, "degree")
        self.frequencies = positive_int(frequencies, "frequencies", minimum=0)
        self.threshold = positive_float(threshold, "threshold", allow_zero=True)
        inputs = state_dim + control_dim
        self._monomials = [combo for d in range(1, self.degree + 1)
                           for combo in itertools.combinations_with_replacement(range(inputs), d)]
        self.register_buffer("coefficients", torch.zeros(self.n_features, state_dim, dtype=self.torch_dtype))

    @property
    def num_parameters(self) -> int:
        """The nonzero coefficients: what the sparse fit kept (its "parameters" in a comparison table)."""
        return int((self.coefficients != 0).sum())

    @property
    def n_features(self) -> int:
        """``F``: 1 + the monomials + 2 x frequencies x inputs."""
        return 1 + len(self._monomials) + 2 * self.frequencies * (self.state_dim + self.control_dim)

    def library(self, z: torch.Tensor) -> torch.Tensor:
        """``Theta(z): (..., F)`` of inputs ``z = [x, u]: (..., D + C)``."""
        columns = [torch.ones_like(z[..., 0])]
        columns += [torch.prod(z[..., list(combo)], dim=-1) for combo in self._monomials]
        for k in range(1, self.frequencies + 1):
            columns += [torch.sin(k * z[..., i]) for i in range(z.shape[-1])]
            columns += [torch.cos(k * z[..., i]) for i in range(z.shape[-1])]
        return torch.stack(columns, dim=-1)

    def feature_names(self, names=None) -> list[str]:
        """The library's columns as text, with ``names`` for the inputs (default ``x0, x1, ..., u0, ...``)."""
        names = list(names) if names is not None else (
            [f"x{i}" for i in range(self.state_dim)] + [f"u{i}" for i in range(self.control_dim)])
        out = ["1"] + ["*".join(f"{names[i]}" if n == 1 else f"{names[i]}^{n}"
                                for i, n in sorted({i: combo.count(i) for i in combo}.items()))
                       for combo in self._monomials]
        for k in range(1, self.frequencies + 1):
            scale = "" if k == 1 else f"{k} "
            out += [f"sin({scale}{name})" for name in names] + [f"cos({scale}{name})" for name in names]
        return out

    def flow(self, t, z, u):
        inputs = z if u is None else torch.cat([z, u.to(z.dtype)], dim=-1)
        return self.library(inputs) @ self.coefficients

    def fit_samples(self, samples) -> None:
        """Fit the coefficients to derivative samples (:class:`~physode.derivatives.DerivativeSamples`) by STLSQ."""
        pysindy = require_pysindy()
        inputs = samples.x if samples.u is None else torch.cat([samples.x, samples.u], dim=-1)
        theta = self.library(inputs.to(torch.float64)).numpy()
        if len(theta) < theta.shape[1]:  # underdetermined: any sparse pattern fits, none means anything
            raise DataMisfitError(f"the sindy library has {theta.shape[1]} terms but the data give only {len(theta)} "
                               "derivative samples; lower degree or frequencies, or give more (or denser) data")
        optimizer = pysindy.optimizers.STLSQ(threshold=self.threshold, alpha=1e-8, max_iter=50)
        with warnings.catch_warnings():  # a fit that keeps no term is refused below, in physode's words
            warnings.filterwarnings("ignore", message="Sparsity parameter is too big")
            optimizer.fit(theta, samples.dxdt.numpy())
        coefficients = np.asarray(optimizer.coef_, dtype=np.float64).T  # (F, D)
        if not np.isfinite(coefficients).all():
            raise PhysodeError("the sindy fit gave non-finite coefficients: its library does not fit the data; lower "
                               "degree or frequencies")
        if not coefficients.any():
            raise PhysodeError(f"the sindy fit kept no term: threshold={self.threshold:g} removed every coefficient; "
                               "lower the threshold, or rescale the data")
        self.coefficients.copy_(torch.from_numpy(coefficients).to(self.torch_dtype))

    def equations(self, names=None, precision: int = 4) -> list[str]:
        """One line per state, e.g. ``d(omega)/dt = -9.81 sin(theta)``: the nonzero terms of the fitted field."""
        names = list(names) if names is not None else None
        features = self.feature_names(names)
        states = names[: self.state_dim] if names else [f"x{i}" for i in range(self.state_dim)]
        lines = []
        for d, state in enumerate(states):
            terms = [f"{float(c):+.{precision}g} {f}" if f != "1" else f"{float(c):+.{precision}g}"
                     for c, f in zip(self.coefficients[:, d].tolist(), features, strict=True) if c != 0.0]
            lines.append(f"d({state})/dt = " + (" ".join(terms).lstrip("+") if terms else "0"))
        return lines
