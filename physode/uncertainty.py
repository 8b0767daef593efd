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
  ``z_lo = Phi^-1(R^-1((1 - p) / 2))`` and ``z_hi = Phi^-1(R^-1((1 + p) / 2))`` (:class:`Calibration`). As
  ``Phi`` is monotone, that is the empirical quantile of the standardised errors ``(y - m) / s`` themselves at
  ``(1 - p) / 2`` and ``(1 + p) / 2``, which is how it is computed: ``Phi`` rounds to 0 or 1 beyond about 8
  standard deviations, so a spread many times too small would otherwise leave the interval capped; and
  optionally one map per band of time, since the spread and the errors it stands for need not grow at one rate
  (:func:`physode.compare` fits ``physode.evaluate.CALIBRATION_BANDS`` of them; times past the validation
  trajectories take the last one's);
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

#: Points of the recalibration map kept (quantiles of the standardised errors at evenly spaced probabilities).
CALIBRATION_POINTS = 201
#: The identity's quantiles stop this far from probabilities 0 and 1 (an interval at level 1 would be infinite).
IDENTITY_EDGE = 5e-7
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
    """A recalibration map, one per band of time: ``quantiles (B, CALIBRATION_POINTS)``, each band's empirical
    quantiles of the standardised errors ``(y - m) / s`` at the evenly spaced probabilities ``0 .. 1`` (None: the
    identity, no recalibration; see the module doc), and
    ``edges (B - 1,)``, the times between the bands: band ``b`` holds the times in ``(edges[b-1], edges[b]]``, the
    first also every earlier time and the last every later one. A spread and the errors it stands for need not grow
    at one rate, so a longer rollout may need another map than a short one. Fit it with :meth:`fit`."""

    quantiles: np.ndarray | None = None
    samples: int = 0  #: how many standardised errors it was fitted on
    edges: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(cls, prediction, target: torch.Tensor, mask: torch.Tensor | None = None, times=None,
            bands: int = 1) -> Calibration:
        """Fit to held-out data: ``prediction`` an :class:`~physode.EnsemblePrediction` of ``(N, T, D)``, ``target
        (N, T, D)`` what was observed, ``mask (N, T)`` which times were (default: all). Coordinates the members all
        agree on exactly (the initial states) say nothing about the spread and are left out.

        ``bands > 1`` fits one map per band of time, the bands holding equal shares of the values (``times``:
        ``(T,)`` or ``(N, T)``, when each state was observed)."""
        check_spread(prediction, "recalibration")
        positive_int(bands, "bands")
        scores, keep = _standardised(prediction, target, mask)
        values = scores[keep]
        if values.size < 2 * bands:
            raise PhysodeError("recalibration needs held-out observations beyond the initial states (at least 2 per "
                               f"band of time, {bands} bands asked for); pass longer trajectories or fewer bands")
        edges = np.zeros(0)
        if bands > 1:
            if times is None:
                raise PhysodeError(f"a recalibration in {bands} bands of time needs the times: pass times=(N, T)")
            when = np.broadcast_to(_times(times, scores.shape[:2])[..., None], scores.shape)[keep]
            edges = np.unique(np.quantile(when, np.arange(1, bands) / bands, method="inverted_cdf"))  # observed times
            band = np.searchsorted(edges, when, side="left")
            if np.bincount(band, minlength=len(edges) + 1).min() < 2:
                raise PhysodeError(f"too few held-out times for {bands} bands of recalibration; use fewer bands")
        else:
            band = np.zeros(values.size, dtype=np.int64)
        probabilities = np.linspace(0.0, 1.0, CALIBRATION_POINTS)
        quantiles = np.stack([np.quantile(values[band == b], probabilities) for b in range(len(edges) + 1)])
        return cls(quantiles, int(values.size), edges)

    @property
    def identity(self) -> bool:
        return self.quantiles is None

    @property
    def bands(self) -> int:
        """How many bands of time it has its own map for."""
        return len(self.edges) + 1

    def z(self, q, times=None) -> np.ndarray:
        """The normal quantile that the recalibrated CDF puts at probability ``q`` (an array or a number): shaped
        like ``q``, or with ``times`` (which a calibration in several bands needs) ``times.shape + q.shape``."""
        q = np.asarray(q, dtype=np.float64)
        if self.quantiles is None:
            z = norm.ppf(np.clip(q, IDENTITY_EDGE, 1 - IDENTITY_EDGE))
            return z if times is None else np.broadcast_to(z, (*np.shape(_times(times)), *q.shape))
        grid = np.linspace(0.0, 1.0, CALIBRATION_POINTS)
        z = np.stack([np.interp(q, grid, row) for row in self.quantiles])  # (B, *q.shape)
        if times is None:
            if self.bands > 1:
                raise PhysodeError(f"this calibration has {self.bands} bands of time: pass the times")
            return z[0]
        return z[np.searchsorted(self.edges, _times(times), side="left")]

    def bounds(self, level: float, times=None):
        """``(z_lo, z_hi)`` of the interval at nominal ``level``: numbers, or with ``times`` arrays of their shape."""
        level = check_level(level)
        z = self.z([(1 - level) / 2, (1 + level) / 2], times)
        lo, hi = z[..., 0], z[..., 1]
        return (float(lo), float(hi)) if times is None else (lo, hi)

    def sigma_scales(self, times=None):
        """``kappa``: the recalibrated one-sigma half-width in units of the members' spread (1 for the identity): a
        number, or with ``times`` an array of their shape."""
        lo, hi = self.bounds(ONE_SIGMA, times)
        return (hi - lo) / 2

    @property
    def sigma_scale(self) -> float:
        """:meth:`sigma_scales` of a calibration in one band."""
        return self.sigma_scales()

    def to_dict(self) -> dict:
        return {"quantiles": None if self.quantiles is None else self.quantiles.tolist(), "samples": self.samples,
                "edges": self.edges.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        quantiles = values.get("quantiles")
        if quantiles is not None:
            quantiles = np.atleast_2d(np.asarray(quantiles, dtype=np.float64))
        return cls(quantiles, int(values.get("samples", 0)), np.asarray(values.get("edges", []), dtype=np.float64))


def _times(times, shape=None) -> np.ndarray:
    """``times`` (a tensor or array, ``(T,)`` or ``(N, T)``) as a float64 array, broadcast to ``shape``."""
    times = times.detach().cpu().numpy() if isinstance(times, torch.Tensor) else np.asarray(times)
    times = times.astype(np.float64)
    return times if shape is None else np.broadcast_to(times, shape)


def prediction_interval(prediction, level: float = 0.9, calibration: Calibration | None = None, times=None):
    """``(lower, upper)``, each shaped like ``prediction.mean`` ``(N, T, D)``: the interval at nominal ``level`` (see
    the module doc), recalibrated by ``calibration`` (None: as the spread says); ``times`` ``(T,)`` or ``(N, T)``, when
    the states are, picks each one's band of a calibration in several."""
    check_spread(prediction)
    lo, hi = _factors(calibration, prediction.mean, times, lambda c, when: c.bounds(level, when))
    return prediction.mean + lo * prediction.std, prediction.mean + hi * prediction.std


def coverage(lower: torch.Tensor, upper: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray:
    """``(N, T)``: the share of each state's coordinates inside ``[lower, upper]`` (all ``(N, T, D)``), NaN where
    ``mask (N, T)`` says the state was not observed."""
    inside = ((target >= lower) & (target <= upper)).double().mean(-1)
    if mask is not None:
        inside = torch.where(mask, inside, math.nan)
    return inside.cpu().numpy()


def calibration_curve(prediction, target: torch.Tensor, mask: torch.Tensor | None = None,
                      calibration: Calibration | None = None, levels: int = 19, times=None) -> dict:
    """Nominal against observed coverage over every observed coordinate beyond the initial states: ``{"levels":
    [0.05 .. 0.95], "observed": [...]}`` (``levels`` evenly spaced nominal levels; ``times`` as for
    :func:`prediction_interval`)."""
    check_spread(prediction, "a calibration curve")
    positive_int(levels, "levels")
    scores, keep = _standardised(prediction, target, mask)
    calibration = calibration or Calibration()
    when = None if times is None else _times(times, scores.shape[:2])
    nominal = np.linspace(0.0, 1.0, levels + 2)[1:-1]
    observed = []
    for p in nominal:
        lo, hi = calibration.bounds(p, when)
        if when is not None:
            lo, hi = lo[..., None], hi[..., None]
        inside = (scores >= lo) & (scores <= hi)
        observed.append(float(inside[keep].mean()) if keep.any() else math.nan)
    return {"levels": nominal.tolist(), "observed": observed}


def predicted_errors(prediction, calibration: Calibration | None = None, times=None) -> torch.Tensor:
    """``(N, T)``: the predicted relative error ``kappa ||std|| / ||mean||`` of each state of the mean rollout
    (``times`` as for :func:`prediction_interval`)."""
    kappa = _factors(calibration, prediction.mean, times, lambda c, when: (c.sigma_scales(when),))[0]
    return kappa[..., 0] * prediction.std.norm(dim=-1) / prediction.mean.norm(dim=-1).clamp_min(1e-12)


def _factors(calibration, mean: torch.Tensor, times, compute) -> list[torch.Tensor]:
    """``compute(calibration, times)``'s numbers or arrays as tensors that broadcast against ``mean (N, T, D)``."""
    calibration = calibration or Calibration()
    when = None if times is None else _times(times, mean.shape[:-1])
    out = compute(calibration, when)
    return [torch.tensor(np.asarray(v, dtype=np.float64), dtype=mean.dtype, device=mean.device)[..., None]
            if when is not None else torch.tensor(float(v), dtype=mean.dtype, device=mean.device).reshape(1)
            for v in out]


def _standardised(prediction, target, mask):
    """The standardised errors ``(y - m) / s`` as a numpy array ``(N, T, D)`` and which of them count: observed,
    finite, and with a spread (the members' initial states agree exactly)."""
    mean, std = prediction.mean.detach().double(), prediction.std.detach().double()
    target = target.to(mean)
    keep = (std > 0) & torch.isfinite(target) & torch.isfinite(mean)
    if mask is not None:
        keep &= mask.unsqueeze(-1).to(keep.device)
    z = torch.where(keep, (target - mean) / torch.where(keep, std, 1.0), 0.0)
    return z.cpu().numpy(), keep.cpu().numpy()
