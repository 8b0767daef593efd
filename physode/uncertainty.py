"""Trust without the truth: an ensemble's spread as prediction intervals and as a predicted error.

The members of an :class:`~physode.Ensemble` agree where the data pinned the field down and drift apart where
they did not, so their spread says how far their mean can be trusted without a true system to check it against.
Per state coordinate the members' mean ``m`` and standard deviation ``s`` (:class:`~physode.EnsemblePrediction`)
are read as a normal prediction ``N(m, s^2)``:

* the **prediction interval** at nominal level ``p`` runs from ``m + s z_lo`` to ``m + s z_hi``, with
  ``z_lo = Phi^-1((1 - p) / 2)`` and ``z_hi = Phi^-1((1 + p) / 2)`` (``Phi``: the standard normal CDF);
* **recalibration** (Kuleshov, Fenner & Ermon 2018, "Accurate uncertainties for deep learning using calibrated
  regression"): a few members' spread is rarely the right size, so on held-out trajectories (the validation split)
  each observed coordinate ``y`` gives its probability integral transform ``Phi((y - m) / s)``; the recalibrated
  CDF is the empirical CDF ``R`` of those values composed with the model's, and the interval at level ``p`` takes
  ``z_lo = Phi^-1(R^-1((1 - p) / 2))`` and ``z_hi = Phi^-1(R^-1((1 + p) / 2))`` (:class:`Calibration`);
* its **coverage** is the share of observed coordinates that fall inside it (:func:`coverage`);
* the **predicted relative error** of the mean is ``kappa ||s|| / ||m||`` over a state's coordinates, with
  ``kappa`` the recalibrated one-sigma half-width (1 before recalibration): what ``||m - x|| / ||x||`` is
  expected to be if the calibrated normal prediction holds. Its first crossing of the valid-time threshold is the
  **predicted trust horizon** of a trajectory (:func:`physode.evaluate.crossing_times`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from scipy.stats import norm

from .checks import positive_int
from .errors import PhysodeError

#: Points of the recalibration map kept (quantiles of the PIT values at evenly spaced probabilities).
CALIBRATION_POINTS = 201
#: The one-sigma level: the share of a normal distribution within one standard deviation of its mean.
ONE_SIGMA = math.erf(1 / math.sqrt(2))


def check_level(level: float, name: str = "level") -> float:
    """A nominal coverage level: a number strictly between 0 and 1."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise PhysodeError(f"{name} must be a coverage level strictly between 0 and 1 (e.g. 0.9), got {level!r}")
    return float(level)


def check_spread(prediction, what: str = "a prediction interval") -> None:
    """Refuse a prediction without spread: one with fewer than 2 members."""
    members = prediction.members.shape[0]
    if members < 2:
        raise PhysodeError(f"{what} needs an ensemble of at least 2 members, this one has {members}; build it with "
                           "ensemble=K (K >= 2) or physode train --ensemble K")


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A recalibration map: ``quantiles (CALIBRATION_POINTS,)``, the PIT values' empirical quantiles at the evenly
    spaced probabilities ``0 .. 1`` (None: the identity, no recalibration). Fit it with :meth:`fit`."""

    quantiles: np.ndarray | None = None
    samples: int = 0  #: how many PIT values it was fitted on

    @classmethod
    def fit(cls, prediction, target: torch.Tensor, mask: torch.Tensor | None = None) -> Calibration:
        """Fit to held-out data: ``prediction`` an :class:`~physode.EnsemblePrediction` of ``(N, T, D)``, ``target
        (N, T, D)`` what was observed, ``mask (N, T)`` which times were (default: all). Coordinates the members all
        agree on exactly (the initial states) say nothing about the spread and are left out."""
        check_spread(prediction, "recalibration")
        pit, keep = _pit(prediction, target, mask)
        values = pit[keep]
        if values.size < 2:
            raise PhysodeError("recalibration needs held-out observations beyond the initial states; pass "
                               "trajectories with at least 2 observed times")
        probabilities = np.linspace(0.0, 1.0, CALIBRATION_POINTS)
        return cls(np.quantile(values, probabilities), int(values.size))

    @property
    def identity(self) -> bool:
        return self.quantiles is None

    def z(self, q) -> np.ndarray:
        """The normal quantile that the recalibrated CDF puts at probability ``q`` (an array or a number)."""
        q = np.asarray(q, dtype=np.float64)
        if self.quantiles is not None:
            q = np.interp(q, np.linspace(0.0, 1.0, CALIBRATION_POINTS), self.quantiles)
        edge = 0.5 / max(self.samples, 1_000_000)  # a quantile of 0 or 1 would make an infinite interval
        return norm.ppf(np.clip(q, edge, 1 - edge))

    def bounds(self, level: float) -> tuple[float, float]:
        """``(z_lo, z_hi)`` of the interval at nominal ``level``."""
        level = check_level(level)
        lo, hi = self.z([(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)

    @property
    def sigma_scale(self) -> float:
        """``kappa``: the recalibrated one-sigma half-width in units of the members' spread (1 for the identity)."""
        lo, hi = self.bounds(ONE_SIGMA)
        return (hi - lo) / 2

    def to_dict(self) -> dict:
        return {"quantiles": None if self.quantiles is None else self.quantiles.tolist(), "samples": self.samples}

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        quantiles = values.get("quantiles")
        return cls(None if quantiles is None else np.asarray(quantiles, dtype=np.float64), int(values.get("samples", 0)))


def prediction_interval(prediction, level: float = 0.9, calibration: Calibration | None = None):
    """``(lower, upper)``, each shaped like ``prediction.mean``: the interval at nominal ``level`` (see the module
    doc), recalibrated by ``calibration`` (None: as the spread says)."""
    check_spread(prediction)
    lo, hi = (calibration or Calibration()).bounds(level)
    return prediction.mean + lo * prediction.std, prediction.mean + hi * prediction.std


def coverage(lower: torch.Tensor, upper: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray:
    """``(N, T)``: the share of each state's coordinates inside ``[lower, upper]`` (all ``(N, T, D)``), NaN where
    ``mask (N, T)`` says the state was not observed."""
    inside = ((target >= lower) & (target <= upper)).double().mean(-1)
    if mask is not None:
        inside = torch.where(mask, inside, math.nan)
    return inside.cpu().numpy()


def calibration_curve(prediction, target: torch.Tensor, mask: torch.Tensor | None = None,
                      calibration: Calibration | None = None, levels: int = 19) -> dict:
    """Nominal against observed coverage over every observed coordinate beyond the initial states: ``{"levels":
    [0.05 .. 0.95], "observed": [...]}`` (``levels`` evenly spaced nominal levels)."""
    check_spread(prediction, "a calibration curve")
    positive_int(levels, "levels")
    pit, keep = _pit(prediction, target, mask)
    values = pit[keep]
    nominal = np.linspace(0.0, 1.0, levels + 2)[1:-1]
    observed = []
    for p in nominal:
        lo, hi = norm.cdf((calibration or Calibration()).bounds(p))
        observed.append(float(((values >= lo) & (values <= hi)).mean()) if values.size else math.nan)
    return {"levels": nominal.tolist(), "observed": observed}


def predicted_errors(prediction, calibration: Calibration | None = None) -> torch.Tensor:
    """``(N, T)``: the predicted relative error ``kappa ||std|| / ||mean||`` of each state of the mean rollout."""
    kappa = (calibration or Calibration()).sigma_scale
    return kappa * prediction.std.norm(dim=-1) / prediction.mean.norm(dim=-1).clamp_min(1e-12)


def _pit(prediction, target, mask):
    """The PIT values ``Phi((y - m) / s)`` as a numpy array ``(N, T, D)`` and which of them count: observed, finite,
    and with a spread (the members' initial states agree exactly)."""
    mean, std = prediction.mean.detach().double(), prediction.std.detach().double()
    target = target.to(mean)
    keep = (std > 0) & torch.isfinite(target) & torch.isfinite(mean)
    if mask is not None:
        keep &= mask.unsqueeze(-1).to(keep.device)
    z = torch.where(keep, (target - mean) / torch.where(keep, std, 1.0), 0.0)
    return norm.cdf(z.cpu().numpy()), keep.cpu().numpy()
