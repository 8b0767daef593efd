"""Training windows: the curriculum of their length, the seeded sampler that draws them, the loss over them
(:class:`WindowLoss`) and the relative rollout error (:func:`relative_errors`) that validation scores."""

from __future__ import annotations

import torch

from ..data import TrajectoryDataset
from ..distributed import World
from ..errors import PhysodeError
from ..models import Ensemble
from .config import TrainConfig


def relative_errors(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-trajectory relative L2 error ``||pred - x|| / ||x||`` over time and states, ``(N,)`` (``mask: (N, T)``)."""
    diff, ref = (prediction - target) ** 2, target**2
    if mask is not None:  # where, not a product: unobserved targets are NaN
        keep = mask.unsqueeze(-1)
        diff, ref = torch.where(keep, diff, 0.0), torch.where(keep, ref, 0.0)
    return (diff.sum((1, 2)) / ref.sum((1, 2)).clamp_min(1e-30)).sqrt()


def curriculum_window(config: TrainConfig, step: int) -> int:
    """The window length of ``step``: from ``window_start`` up to ``window`` over the first ``curriculum`` share of
    the steps, then ``window``."""
    grow = max(1, int(config.curriculum * config.steps))
    share = min(1.0, step / grow)
    return round(config.window_start + share * (config.window - config.window_start))


class WindowSampler:
    """Random training windows drawn with one torch.Generator (its state is saved for resuming).

    The generator draws the global batch (trajectory and start of every window) on the CPU, the same
    on every rank and every device; this rank keeps the windows of its own shard of trajectories,
    which lives on ``device`` (only the drawn indices move there each step). A window lies within its
    trajectory's observations up to ``t_train``; one of a trajectory shorter than the window runs past the
    trajectory's end on the grid's continuation, and its ``mask`` leaves those points out of the loss.
    """

    def __init__(self, train: TrajectoryDataset, dtype, seed: int, device, world: World):
        mask = train.train_time_mask
        self.counts = mask.sum(1)  # observations per trajectory within the training horizon (all ranks')
        self.longest = int(self.counts.max()) - 1
        if int(self.counts.min()) < 2 and not train.ragged or self.longest < 1:
            raise PhysodeError("some training trajectory has fewer than 2 observations before t_train; raise t_train")
        self.world, self.device = world, device
        shard = world.shard(len(train))
        self.x, self.t = train.x[shard].to(device, dtype), train.times[shard].to(device)
        self.u = None if train.u is None else train.u[shard].to(device, dtype)
        self.generator = torch.Generator().manual_seed(seed)
        self.rows = None  #: (n,) the training trajectories (rows of the whole train split) of the last sample's windows

    def sample(self, batch: int, window: int):
        """This rank's windows of a global batch of ``batch``: ``x (n, w+1, D)``, ``t (n, w+1)``, ``u (n, w, C)``,
        ``mask (n, w+1)`` (observed points, within ``t_train``) and the loss scale ``size / (observed points x D)``
        of :class:`WindowLoss`. Their trajectories are kept in :attr:`rows` (what an ensemble's bootstrap counts
        weigh the windows by)."""
        window = min(window, self.longest)
        rows = torch.randint(len(self.counts), (batch,), generator=self.generator)
        counts = self.counts[rows]
        starts = (torch.rand(batch, generator=self.generator, dtype=torch.float64) * (counts - window).clamp_min(1)).long()
        index = starts[:, None] + torch.arange(window + 1)
        mask = index < counts[:, None]
        observed = int(mask.sum())
        if self.world.size > 1:
            mine = rows % self.world.size == self.world.rank
            rows, index, mask = rows[mine], index[mine], mask[mine]
        self.rows = rows
        if self.world.size > 1:  # the rank's own rows of its shard
            rows = rows // self.world.size
        index = index.clamp_max(self.t.shape[1] - 1).to(self.device)
        rows = rows[:, None].to(self.device)
        x = self.x[rows, index]
        t = self.t[rows, index]
        u = None if self.u is None else self.u[rows, index[:, :-1].clamp_max(self.u.shape[1] - 1)]
        return x, t, u, mask.to(self.device), self.world.size / (observed * self.x.shape[-1])


class WindowLoss(torch.nn.Module):
    """The training loss as a module (what ``DistributedDataParallel`` wraps).

    ``forward(x, t, u, mask, scale)`` (``x: (n, w+1, D)``, ``t: (n, w+1)``, ``u: (n, w, C) | None``,
    ``mask: (n, w+1)``, as :meth:`WindowSampler.sample` draws them) rolls the model out over this rank's windows
    and returns ``scale`` times the sum of squared errors in normalised units over the observed points, a 0-d
    tensor; ``scale = size / (observed elements of the global batch)`` makes DDP's average over ranks the mean
    over the global batch. A rank without windows this step returns a zero that still reaches every parameter,
    so that its gradient hooks take part.

    An :class:`~physode.Ensemble`'s loss is the sum of its members' own: each member's rollouts against the
    windows, in its own normalised units, each window weighted by the member's bootstrap count of the window's
    trajectory (``rows: (n,)``, the sampler's :attr:`WindowSampler.rows`; without rows or counts every window
    counts once), so that each member learns from its own resample as it would alone.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, u, mask, scale: float, rows=None):
        if x.shape[0] == 0:
            return sum((p * 0.0).sum() for p in self.model.parameters())
        if isinstance(self.model, Ensemble):
            return self._ensemble_loss(x, t, u, mask, scale, rows)
        prediction = self.model.rollout(x[:, 0], t, u)
        # unobserved targets (NaN) become the prediction itself: no error and, unlike masking the error, no NaN gradient
        target = torch.where(mask.unsqueeze(-1), x, prediction.detach())
        return (((prediction - target) / self.model.x_scale) ** 2).sum() * scale

    def _ensemble_loss(self, x, t, u, mask, scale, rows):
        prediction = self.model.member_rollouts(x[:, 0], t, u)  # (K, n, w+1, D)
        target = torch.where(mask.unsqueeze(-1), x, prediction.detach())
        scales = self.model.member_scales()[:, None, None]  # (K, 1, 1, D)
        errors = (((prediction - target) / scales) ** 2).sum((2, 3))  # (K, n)
        weights = self.model.bootstrap_weights(rows)
        return (errors if weights is None else errors * weights).sum() * scale
