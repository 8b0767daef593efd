"""Trajectory datasets: generation from a system, splits, observation noise and ``.npz`` files.

A :class:`TrajectoryDataset` holds ``N`` trajectories of ``T`` states each, on one shared time grid
``(T,)`` or one grid per trajectory ``(N, T)``, with optional zero-order-hold controls ``(N, T-1, C)``.
Trajectories are split by trajectory into train / val / test, and in time: models train on
``[0, t_train]`` and are evaluated up to the end of the grid (extrapolation).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from .checks import affordable, all_finite, as_float_tensor, check_interface, positive_float, positive_int, seed_value, time_grid
from .errors import FileFormatError, PhysodeError, PhysodeWarning
from .files import atomic_write
from .errors import unknown_name
from .simulate import default_method, default_tolerances, simulate
from .errors import UnknownSystemError
from .systems import System, system_from_spec
from .systems.registry import HOW_TO_REGISTER, refuse_name_clash

FORMAT = "physode.TrajectoryDataset"
FORMAT_VERSION = 2  #: the newest version read (1: equal lengths; 2: trajectories of different lengths)
SPLITS = ("train", "val", "test")
#: The options of :func:`physode.simulate` that :meth:`TrajectoryDataset.generate` passes on.
SIMULATE_OPTIONS = ("method", "rtol", "atol", "step_size", "batch_size", "max_steps")


class TrajectoryDataset:
    """``N`` trajectories of a known system, with their splits and metadata.

    Attributes:
        t: times, ``(T,)`` shared or ``(N, T)`` per trajectory, float64.
        x: observed states ``(N, T, D)`` (with noise, if any), float64.
        x_clean: noise-free states ``(N, T, D)``.
        u: controls ``(N, T-1, C)``, ``u[:, k]`` held over ``[t_k, t_{k+1})``, or None.
        split: ``(N,)`` codes, 0 = train, 1 = val, 2 = test.
        t_train: training horizon; times ``<= t_train`` are for training, later ones for extrapolation.
        system_spec: ``{"name", "params"}`` of the generating system, or None for recorded data (e.g.
            :func:`physode.collect` from a Gymnasium env), which then names its source in ``meta["source"]``.
            The constructor takes a spec or a :class:`~physode.System` itself. A spec whose system nothing
            registered or installed provides is kept as it is: the data load and train, and whatever needs
            the true system (:attr:`system`) says how to register it.
        meta: how it was made (seed, grid, noise_std, dt, t_end, ...).
    """

    def __init__(self, t, x, system_spec, *, x_clean=None, u=None, split=None, t_train=None, meta=None, lengths=None):
        system = _known_system(system_spec)
        self._system = system_spec if isinstance(system_spec, System) else None  # the very object it was made from
        # a system that nothing registered or installed provides keeps its spec as it is: the data still load
        self.system_spec = system.spec() if system is not None else None if system_spec is None else dict(system_spec)
        self.meta = _plain_meta(meta)
        x = _padded_states(x, "x")
        dim = x.shape[-1] if system is None else system.state_dim
        if x.ndim != 3 or x.shape[2] != dim or 0 in x.shape:
            raise PhysodeError(f"x must have shape (N, T, {dim}) for {self.name}, got {tuple(x.shape)}")
        n, n_times, _ = x.shape
        self.lengths = _lengths(lengths, n, n_times)
        valid = torch.arange(n_times)[None, :] < self.lengths[:, None]  # (what mask gives once x is set)
        x = _only_observed(x, valid, "x")
        self.t = _padded_grid(t, n, self.lengths).detach()
        if self.t.shape[-1] != n_times:
            raise PhysodeError(f"t has {self.t.shape[-1]} times but x has {n_times}; they must match")
        self.x = x.detach()
        # never the same tensor as x: editing the observations must not move the clean states
        self.x_clean = self.x.clone() if x_clean is None or x_clean is x else \
            _only_observed(_padded_states(x_clean, "x_clean"), valid, "x_clean").detach()
        if self.x_clean.shape != self.x.shape:
            raise PhysodeError(f"x_clean must have the shape of x {tuple(self.x.shape)}, got {tuple(self.x_clean.shape)}")
        self.u = None if u is None else _held_controls(u, self.lengths).detach()
        if self.u is not None:
            controls = self.u.shape[-1] if system is None else system.control_dim
            if self.u.shape != (n, n_times - 1, controls) or controls == 0:
                raise PhysodeError(f"u must have shape ({n}, {n_times - 1}, {controls or 'C'}), got {tuple(self.u.shape)}")
        split = np.zeros(n, dtype=np.int64) if split is None else np.asarray(split)
        if split.shape != (n,) or split.dtype.kind not in "iu" or not np.isin(split, (0, 1, 2)).all():
            raise PhysodeError(f"split must be {n} codes in {{0, 1, 2}} (train, val, test), got {split!r}")
        self.split = torch.from_numpy(split.astype(np.int64))
        first, last = float(self.t[..., 0].max()), float(self.end_times.max() if self.ragged else self.t[..., -1].min())
        if isinstance(t_train, torch.Tensor | np.ndarray) and t_train.ndim == 0:
            t_train = t_train.item()  # a 0-d tensor or array, e.g. t[5]
        if t_train is not None and (isinstance(t_train, bool) or not isinstance(t_train, numbers.Real)):
            raise PhysodeError(f"t_train must be a number (a time within the grid), got {t_train!r}")
        self.t_train = last if t_train is None else float(t_train)
        if not first < self.t_train <= last:
            within = "within the longest trajectory" if self.ragged else "within every trajectory's times"
            raise PhysodeError(f"t_train must lie in ({first:g}, {last:g}], {within}; got {t_train!r}")

    # ------------------------------------------------------------------ generation
    @classmethod
    def generate(
        cls,
        system: System,
        n_trajectories: int,
        t_end: float,
        dt: float,
        *,
        irregular: bool = False,
        noise_std: float = 0.0,
        seed: int = 0,
        t_train: float | None = None,
        controls=None,
        control_scale: float = 1.0,
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        progress: bool = False,
        device="auto",
        **simulate_options,
    ) -> TrajectoryDataset:
        """Simulate ``n_trajectories`` from ``system.sample_initial_states`` and package them.

        Args:
            system: the ground-truth system.
            n_trajectories: how many trajectories.
            t_end: the end of every grid; each has ``T = round(t_end / dt) + 1`` times from 0 to ``t_end``.
            dt: spacing of the regular grid (the mean spacing of irregular ones); when it does not divide
                ``t_end`` the grid's spacing is ``t_end / (T - 1)``, and ``meta["dt"]`` records that.
            irregular: give each trajectory its own grid: 0, ``T - 2`` sorted uniform random times in
                ``(0, t_end)``, and ``t_end``.
            noise_std: observation noise, relative: ``x = x_clean + noise_std * s_d * N(0, 1)`` with ``s_d``
                the standard deviation of state component ``d`` over the clean dataset.
            seed: the one seed behind initial states, grids, controls, noise and splits.
            t_train: training horizon (default ``t_end / 2``: evaluate up to 2x the training horizon).
            controls: None, ``"random"`` (uniform in ``[-control_scale, control_scale]``, held over each
                interval), or an array ``(N, T-1, C)``.
            fractions: train / val / test shares of the trajectories.
            progress: show a progress bar while simulating.
            device: where to simulate (``"auto"``: the GPU when present); the dataset is kept on the CPU.
            simulate_options: passed to :func:`physode.simulate`: ``method``, ``rtol``, ``atol``, ``step_size``,
                ``batch_size``, ``max_steps`` (others are refused). ``meta`` records them, with the solver's defaults.
        """
        if not isinstance(system, System):
            raise PhysodeError(f"system must be a physode System (see physode.make_system), got {system!r}")
        check_interface(system)
        refuse_name_clash(system)
        for key in simulate_options:
            if key not in SIMULATE_OPTIONS:
                raise unknown_name("option of generate", key, SIMULATE_OPTIONS)
        n = positive_int(n_trajectories, "n_trajectories")
        t_end = positive_float(t_end, "t_end")
        dt = positive_float(dt, "dt")
        if dt >= t_end:
            raise PhysodeError(f"dt ({dt:g}) must be smaller than t_end ({t_end:g})")
        if not math.isfinite(t_end / dt):
            raise PhysodeError(f"t_end / dt = {t_end:g} / {dt:g} is more time points than any machine holds; use a larger dt")
        n_times = round(t_end / dt) + 1
        affordable(8.0 * n * n_times * (3 * system.state_dim + system.control_dim + 1), f"{n} trajectories of {n_times} times")
        noise_std = positive_float(noise_std, "noise_std", allow_zero=True)
        seed = seed_value(seed)
        t_train = t_end / 2 if t_train is None else positive_float(t_train, "t_train")
        fractions = check_fractions(fractions)
        splits = split_codes(n, fractions, np.random.default_rng([seed, 4]))

        x0 = system.sample_initial_states(n, seed=seed)
        t = _grid(n, n_times, t_end, irregular, np.random.default_rng([seed, 1]))
        u = _make_controls(controls, n, n_times, system.control_dim, control_scale, np.random.default_rng([seed, 2]))
        x_clean = simulate(system, x0, t, u, progress=progress, device=device, **simulate_options).cpu()
        x = None  # the clean states (the constructor keeps a copy)
        if noise_std:
            scale = x_clean.reshape(-1, system.state_dim).std(dim=0)
            noise = torch.from_numpy(np.random.default_rng([seed, 3]).standard_normal(tuple(x_clean.shape)))
            x = x_clean + noise_std * scale * noise
        meta = {
            "seed": seed,
            "grid": "irregular" if irregular else "regular",
            "dt": t_end / (n_times - 1),  # the grid's spacing (the dt asked for, rounded to fit t_end)
            "t_end": t_end,
            "noise_std": noise_std,
            "time_dependent": bool(system.time_dependent),
            "controls": None if controls is None else (controls if isinstance(controls, str) else "given"),
            "fractions": list(fractions),
            # how the states were computed: the solver and its settings, defaults included
            **_solver_settings(system, simulate_options),
        }
        if controls == "random":
            meta["control_scale"] = float(control_scale)
        return cls(t, x_clean if x is None else x, system, x_clean=x_clean, u=u, split=splits, t_train=t_train,
                   meta=meta)

    @classmethod
    def from_arrays(cls, t, x, u=None, *, system=None, t_train: float | None = None,
                    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0, split=None,
                    time_dependent: bool = False, source: str = "arrays", meta: dict | None = None) -> TrajectoryDataset:
        """Recorded trajectories (another simulator, a lab, a robot log) as a dataset, split like generated data.

        Args:
            t: times: one shared grid ``(T,)``, one grid per trajectory ``(N, T)``, or a list of ``N`` grids ``(L_i,)``
                (trajectories of different lengths; with a shared grid, trajectory ``i`` is observed at ``t[:L_i]``).
            x: states ``(N, T, D)``, or a list of ``N`` arrays ``(L_i, D)`` of different lengths ``L_i >= 2``.
            u: controls, None, ``(N, T-1, C)`` or a list of ``(L_i - 1, C)``: ``u[k]`` held over ``[t_k, t_{k+1})``.
            system: the system the data come from, if physode knows it (a :class:`~physode.System` or its spec);
                None for data whose true field is unknown (scored against the data themselves).
            t_train: training horizon (default: the time of the median-length trajectory's observation nearest half
                way through it, so that the later half of the test trajectories measures extrapolation).
            fractions: train / val / test shares of the trajectories, drawn with ``seed``; with 2 or more
                trajectories at least one is kept for testing, with 3 or more at least one for validation.
            split: the split itself instead, ``(N,)`` codes 0 = train, 1 = val, 2 = test (e.g. as a file recorded it).
            time_dependent: whether the dynamics depend on time itself (models then take ``t`` as an input).
            source: where the data come from (``meta["source"]``, shown in summaries), e.g. a file name.
            meta: more metadata (JSON values) to keep.
        """
        states = _trajectory_list(x, "x")
        n = len(states)
        sizes = [len(s) for s in states]
        for i, size in enumerate(sizes):
            if size < 2:
                raise PhysodeError(f"x[{i}] has {size} observation; a trajectory needs at least 2 (drop it)")
        grids = _trajectory_list(t, "t", sizes=sizes, ndim=1, rule="one time per state")
        controls = None if u is None else _trajectory_list(u, "u", sizes=[k - 1 for k in sizes],
                                                           rule="one control per interval between its times")
        dims = {s.shape[-1] for s in states}
        if any(s.ndim != 2 for s in states) or len(dims) != 1:
            raise PhysodeError(f"every trajectory of x must be (L_i, D) with one state count D, got shapes "
                               f"{sorted({tuple(s.shape) for s in states})}")
        longest = max(sizes)
        shared = np.asarray(t).ndim == 1 if not isinstance(t, (list, tuple)) else False
        widest = grids[sizes.index(longest)]
        if not shared and all(np.array_equal(g, widest[: len(g)]) for g in grids):  # prefixes of one grid: keep one
            t, shared = widest, True
        time = (np.asarray(t, dtype=np.float64)[:longest] if shared else _stack(grids, longest))
        if shared and len(time) < longest:
            raise PhysodeError(f"t has {len(time)} times, fewer than the longest trajectory's {longest}")
        fractions = check_fractions(fractions)
        seed = seed_value(seed)
        splits = split_codes(n, fractions, np.random.default_rng([seed, 4]), keep_test=True) if split is None else split
        starts = [float(g[0]) for g in grids]
        ends = [float(g[-1]) for g in grids]
        for i, grid in enumerate(grids):
            time_grid(grid, f"t[{i}]")
        if t_train is None:  # the observation of the median-length trajectory nearest half way through it
            first, middle = max(starts), grids[int(np.argsort(ends)[n // 2])]
            later = middle[middle > first]
            if not len(later):
                raise PhysodeError(f"the median-length trajectory ends at t={middle[-1]:g}, before another starts (at "
                                   f"t={first:g}); give the trajectories a common start (e.g. t - t[0]) or pass t_train")
            t_train = float(later[np.argmin(np.abs(later - (first + 0.5 * (middle[-1] - first))))])
        spacing = float(np.median(np.concatenate([np.diff(np.asarray(g, dtype=np.float64)) for g in grids])))
        meta = {"source": str(source), "seed": seed, "fractions": list(fractions), "time_dependent": bool(time_dependent),
                "grid": "regular" if shared or all(np.allclose(np.diff(g), spacing) for g in grids) else "irregular",
                "dt": spacing, "t_end": max(ends), **(meta or {})}
        return cls(time, _stack(states, longest), system, u=None if controls is None else _stack(controls, longest - 1),
                   split=splits, t_train=t_train, meta=meta, lengths=np.asarray(sizes))

    @classmethod
    def from_csv(cls, paths, *, time: str, states, controls=None, trajectory_column: str | None = None,
                 split_column: str | None = None, **options) -> TrajectoryDataset:
        """Recorded trajectories from CSV files (one row per observation); see :func:`physode.tabular.read_csv`
        for the layout and ``options`` (those of :meth:`from_arrays`)."""
        from .tabular import read_csv

        return read_csv(paths, time=time, states=states, controls=controls, trajectory_column=trajectory_column,
                        split_column=split_column, **options)

    def to_csv(self, path, **options) -> Path:
        """Write the trajectories to ``path`` as CSV, one row per observation and no padding; see
        :func:`physode.tabular.write_csv`."""
        from .tabular import write_csv

        return write_csv(self, path, **options)

    # ------------------------------------------------------------------ views
    @property
    def system(self) -> System:
        """The generating system: the one it was made from in this session, else rebuilt from :attr:`system_spec`
        through the registry (:class:`~physode.UnknownSystemError` saying how to register it when nothing provides it)."""
        if self.system_spec is None:
            raise PhysodeError(f"this dataset was recorded from {self.name}, not simulated from a physode system, so "
                               "there is no true vector field to compare with; this needs a dataset from physode simulate")
        if self._system is not None:
            return self._system
        try:
            return system_from_spec(self.system_spec)
        except UnknownSystemError:
            raise UnknownSystemError(f"this dataset was simulated from system {self.name!r}, which nothing in this session "
                                     f"provides, so its true field is unknown here; {HOW_TO_REGISTER}") from None

    @property
    def has_system(self) -> bool:
        """Whether the true system is at hand (:attr:`system` works): False for recorded data and for a system that
        nothing registered or installed provides."""
        if self.system_spec is None:
            return False
        return self._system is not None or _known_system(self.system_spec) is not None

    @property
    def name(self) -> str:
        """The system's name, or the source of recorded data (``meta["source"]``, e.g. a Gymnasium env id)."""
        return self.system_spec["name"] if self.system_spec else str(self.meta.get("source", "an external source"))

    def __len__(self) -> int:
        return self.x.shape[0]

    def fingerprint(self) -> str:
        """A hash of what models learn from: the system, times, observed states, controls, splits and ``t_train``.

        Checkpoints record it, so that a run is never resumed, nor a trained model reused, on other data.
        """
        digest = hashlib.sha256(json.dumps([self.system_spec, self.t_train, self.meta.get("source")]).encode())
        for array in (self.t, self.x, self.u, self.split):
            digest.update(b"none" if array is None else str(tuple(array.shape)).encode())
            if array is not None:
                digest.update(array.contiguous().numpy())
        return digest.hexdigest()[:16]

    @property
    def time_dependent(self) -> bool:
        """Whether the dynamics depend on time itself (e.g. a forcing), as recorded when the data were made
        (``meta["time_dependent"]``) or as the true system says."""
        if "time_dependent" in self.meta:
            return bool(self.meta["time_dependent"])
        return self.has_system and bool(self.system.time_dependent)

    @property
    def state_names(self) -> tuple[str, ...]:
        """The states' names: the true system's, else those recorded with the data (``meta["state_names"]``, e.g.
        a CSV file's columns), else ``x0, x1, ...``."""
        if self.has_system:
            return tuple(self.system.state_names)
        names = self.meta.get("state_names")
        return tuple(names) if names else tuple(f"x{i}" for i in range(self.state_dim))

    @property
    def n_times(self) -> int:
        return self.x.shape[1]

    @property
    def state_dim(self) -> int:
        return self.x.shape[2]

    @property
    def irregular(self) -> bool:
        """True when each trajectory has its own time grid."""
        return self.t.ndim == 2

    @property
    def times(self) -> torch.Tensor:
        """Times per trajectory ``(N, T)`` (the shared grid repeated when regular)."""
        return self.t.expand(len(self), -1) if self.t.ndim == 1 else self.t

    @property
    def ragged(self) -> bool:
        """True when the trajectories have different lengths (:attr:`lengths`)."""
        return bool((self.lengths != self.n_times).any())

    @property
    def mask(self) -> torch.Tensor:
        """``(N, T)`` True at the observations: each trajectory's first ``lengths[i]`` times."""
        return torch.arange(self.n_times)[None, :] < self.lengths[:, None]

    @property
    def end_times(self) -> torch.Tensor:
        """``(N,)`` each trajectory's last observed time."""
        return self.times.gather(1, (self.lengths - 1)[:, None]).squeeze(1)

    def trajectory(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Trajectory ``i`` as observed, without padding: ``t (L,)``, ``x (L, D)``, ``u (L-1, C)`` or None."""
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -n <= i < n:
            raise PhysodeError(f"trajectory index must be a whole number in [-{n}, {n}), got {i!r}")
        length = int(self.lengths[i])
        return (self.times[i, :length], self.x[i, :length],
                None if self.u is None else self.u[i, : length - 1])

    @property
    def train_time_mask(self) -> torch.Tensor:
        """``(N, T)`` True at the observations with ``t <= t_train`` (the part of each trajectory to train on)."""
        return (self.times <= self.t_train) & self.mask

    def spacing(self, statistic: str = "median") -> float:
        """The ``"median"`` (or ``"mean"``) interval between consecutive observations within the training horizon,
        over all trajectories. On an irregular grid the mean is what a run of ``k`` intervals spans on average
        (``k`` times it); the median is the interval most observations have to their next."""
        if statistic not in ("median", "mean"):
            raise unknown_name("statistic", statistic, ("median", "mean"))
        intervals = self.times.diff(dim=1)[self._training_intervals()]
        return float(intervals.median() if statistic == "median" else intervals.mean())

    def time_scale(self) -> float:
        """How fast the motion is: the median time it takes the observed state to move by one standard deviation.

        From consecutive observations within the training horizon: ``dt / ||dx / std||``, with ``std`` the
        per-state standard deviation of those observations (states that do not vary are left out). On a coarse
        grid the chord between two observations cuts corners, so the estimate is an upper bound there. A harmonic
        oscillator of angular frequency ``w`` (a small pendulum swing) gives ``1 / (sqrt(2) w)``.
        """
        observed, both = self.train_time_mask, self._training_intervals()
        x = self.x.double()
        std = x[observed].std(0)
        varies = std > 1e-12 * std.max().clamp_min(1e-300)
        moved = ((x.diff(dim=1)[..., varies] / std[varies]) ** 2).sum(-1).sqrt()[both]
        dt = self.times.double().diff(dim=1)[both]
        return float((dt / moved.clamp_min(1e-300)).median())

    def _training_intervals(self) -> torch.Tensor:
        """``(N, T-1)`` True where observations ``k`` and ``k + 1`` both lie within the training horizon."""
        observed = self.train_time_mask
        both = observed[:, 1:] & observed[:, :-1]
        if not bool(both.any()):
            raise PhysodeError("no trajectory has two observations before t_train; raise t_train")
        return both

    def subset(self, index) -> TrajectoryDataset:
        """The trajectories selected by ``index`` (boolean mask or integer indices), as a new dataset."""
        n = len(self)
        try:
            index = torch.as_tensor(index)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise PhysodeError(f"index must be a boolean mask or integer indices, could not convert it ({exc})") from None
        if index.dtype == torch.bool:
            if index.shape != (n,):
                raise PhysodeError(f"a boolean index must be a mask of shape ({n},), one entry per trajectory; "
                                   f"got shape {tuple(index.shape)}")
            index = index.nonzero().squeeze(1)
        elif index.dtype.is_floating_point or index.is_complex() or index.ndim > 1:
            raise PhysodeError(f"index must be a boolean mask ({n},) or 1-D integer indices, got {index.dtype} of shape "
                               f"{tuple(index.shape)}")
        elif index.numel() and not -n <= int(index.min()) <= int(index.max()) < n:
            raise PhysodeError(f"indices must lie in [-{n}, {n}) for {n} trajectories, got {int(index.min())} to "
                               f"{int(index.max())}")
        index = index.long()  # torch would take uint8 indices for a mask
        t = self.t if self.t.ndim == 1 else self.t[index]
        u = None if self.u is None else self.u[index]
        part = TrajectoryDataset(
            t, self.x[index], self.system_spec if self._system is None else self._system, x_clean=self.x_clean[index], u=u,
            split=self.split[index].numpy(), t_train=None if self.ragged else self.t_train, meta=self.meta,
            lengths=self.lengths[index].numpy(),
        )
        part.t_train = self.t_train  # the whole's horizon, which trajectories of different lengths need not all reach
        return part

    def part(self, name: str) -> TrajectoryDataset:
        """The ``"train"``, ``"val"`` or ``"test"`` trajectories."""
        if name not in SPLITS:
            raise PhysodeError(f"split name must be one of {', '.join(SPLITS)}, got {name!r}")
        chosen = self.split == SPLITS.index(name)
        if not chosen.any():
            raise PhysodeError(f"the dataset has no {name} trajectories (train/val/test: {self._split_counts()}); "
                               f"generate more trajectories or a larger {name} fraction")
        return self.subset(chosen)

    def part_or(self, name: str, fallback: str, purpose: str | None) -> TrajectoryDataset:
        """The ``name`` trajectories; when there are none, the ``fallback`` ones (a split's name, or ``"all"``)
        with a :class:`~physode.PhysodeWarning` that says what ``purpose`` then runs on (None: no warning)."""
        if name not in SPLITS or (self.split == SPLITS.index(name)).any():
            return self.part(name)
        if purpose is not None:
            warnings.warn(f"the dataset has no {name} trajectories (train/val/test: {self._split_counts()}), so {purpose} uses "
                          f"{'all' if fallback == 'all' else 'the ' + fallback} trajectories instead; generate more "
                          f"trajectories or a larger {name} fraction", PhysodeWarning, stacklevel=3)
        return self if fallback == "all" else self.part(fallback)

    @property
    def train(self) -> TrajectoryDataset:
        return self.part("train")

    @property
    def val(self) -> TrajectoryDataset:
        return self.part("val")

    @property
    def test(self) -> TrajectoryDataset:
        return self.part("test")

    def _split_counts(self) -> str:
        """``"train/val/test"`` trajectory counts, e.g. ``"51/6/7"``."""
        return "/".join(str(int((self.split == i).sum())) for i in range(len(SPLITS)))

    def summary(self) -> str:
        """One line: system, sizes, grid, noise, horizon and split counts."""
        counts = self._split_counts()
        noise = f", noise {self.meta['noise_std']:g}" if "noise_std" in self.meta else ""  # unknown for recorded data
        controls = "" if self.u is None else f", controls {self.u.shape[2]}"
        sizes = f"{int(self.lengths.min())}-{self.n_times}" if self.ragged else str(self.n_times)
        return (
            f"{self.name}: {len(self)} trajectories x {sizes} times x {self.state_dim} states, "
            f"{'irregular' if self.irregular else 'regular'} grid to t={float(self.end_times.max()):g}, "
            f"t_train={self.t_train:g}{noise}{controls}, train/val/test {counts}"
        )

    def __repr__(self) -> str:
        return f"TrajectoryDataset({self.summary()})"

    # ------------------------------------------------------------------ files
    def save(self, path) -> Path:
        """Write the dataset to ``path`` (``.npz``) atomically; returns the path.

        Trajectories of different lengths are stored without padding: their observations one after another
        (``x: (sum L_i, D)``, ``u: (sum (L_i - 1), C)``, per-trajectory grids ``t: (sum L_i,)``) with ``lengths``
        (format version 2); equal-length datasets keep the rectangular version-1 layout.
        """
        metadata = {
            "format": FORMAT,
            "format_version": 2 if self.ragged else 1,
            "system": self.system_spec,
            "t_train": self.t_train,
            "meta": self.meta,
        }
        mask = self.mask
        if self.ragged:
            controls = torch.arange(self.n_times - 1)[None, :] < (self.lengths[:, None] - 1)
            arrays = {"t": (self.t[mask] if self.irregular else self.t).numpy(), "x": self.x[mask].numpy(),
                      "x_clean": self.x_clean[mask].numpy(), "lengths": self.lengths.numpy()}
            if self.u is not None:
                arrays["u"] = self.u[controls].numpy()
        else:
            arrays = {"t": self.t.numpy(), "x": self.x.numpy(), "x_clean": self.x_clean.numpy()}
            if self.u is not None:
                arrays["u"] = self.u.numpy()
        arrays.update(split=self.split.numpy(), metadata=np.array(json.dumps(metadata)))
        with atomic_write(path, "dataset") as handle:
            np.savez(handle, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path) -> TrajectoryDataset:
        """Read a dataset written by :meth:`save`; refuses missing, corrupt, foreign or mismatched files.

        Never executes code from the file (``allow_pickle=False``).
        """
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(
                f"dataset file {str(path)!r} does not exist (or is not a file); create one with `physode simulate`"
            )
        if not zipfile.is_zipfile(path):
            raise FileFormatError(f"{str(path)!r} is not a readable physode dataset (.npz): not a .npz archive at all "
                                  "(a .npy array, another kind of file, or a truncated one); create one with `physode simulate`")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise FileFormatError(
                f"{str(path)!r} is not a readable physode dataset (.npz): {exc}; it may be truncated or of another kind"
            ) from None
        if not isinstance(arrays, dict) or "metadata" not in arrays:
            raise FileFormatError(f"{str(path)!r} is not a physode dataset: it has no metadata entry")
        try:
            metadata = json.loads(str(arrays["metadata"]))
        except (json.JSONDecodeError, TypeError) as exc:
            raise FileFormatError(f"{str(path)!r} has unreadable metadata ({exc})") from None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise FileFormatError(f"{str(path)!r} is not a physode dataset (format {metadata.get('format')!r})"
                                  if isinstance(metadata, dict) else f"{str(path)!r} has malformed metadata")
        version = metadata.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise FileFormatError(
                f"{str(path)!r} has dataset format version {version!r}; this physode reads versions 1..{FORMAT_VERSION}: "
                "upgrade physode or regenerate the file"
            )
        missing = [k for k in ("t", "x", "x_clean", "split") if k not in arrays]
        if missing:
            raise FileFormatError(f"{str(path)!r} lacks the arrays {missing}; regenerate it with `physode simulate`")
        try:
            if "lengths" in arrays:
                arrays.update(_unflattened(arrays))
            return cls(
                arrays["t"], arrays["x"], metadata.get("system"), x_clean=arrays["x_clean"], u=arrays.get("u"),
                split=arrays["split"], t_train=metadata.get("t_train"), meta=metadata.get("meta"),
                lengths=arrays.get("lengths"),
            )
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:  # incl. PhysodeError
            raise FileFormatError(f"{str(path)!r} is an inconsistent dataset: {exc}") from None


def _solver_settings(system, options: dict) -> dict:
    """The simulate options of a generation of ``system`` with the solver's defaults filled in, as ``meta`` records
    them."""
    method = options.get("method") or default_method(system)
    rtol, atol = default_tolerances(method)
    given = {key: value for key, value in options.items() if value is not None}
    return {"method": method, "rtol": rtol, "atol": atol, **given}


def _known_system(spec) -> System | None:
    """The system a dataset's ``spec`` (a spec dict or a System) names, or None: recorded data (no spec), or a
    system that nothing registered or installed provides."""
    if spec is None or isinstance(spec, System):
        return spec
    try:
        return system_from_spec(spec)
    except UnknownSystemError:
        return None


def _grid(n: int, n_times: int, t_end: float, irregular: bool, gen: np.random.Generator) -> torch.Tensor:
    if not irregular:
        return torch.linspace(0.0, t_end, n_times, dtype=torch.float64)
    inner = np.sort(gen.uniform(0.0, t_end, (n, n_times - 2)), axis=1)
    grid = np.concatenate([np.zeros((n, 1)), inner, np.full((n, 1), t_end)], axis=1)
    while (bad := ~(np.diff(grid, axis=1) > 0).all(axis=1)).any():  # ties: practically never
        grid[bad, 1:-1] = np.sort(gen.uniform(0.0, t_end, (int(bad.sum()), n_times - 2)), axis=1)
    return torch.from_numpy(grid)


def _make_controls(controls, n, n_times, control_dim, scale, gen):
    if controls is None:
        return None
    if isinstance(controls, str):
        if controls != "random":
            raise PhysodeError(f"controls must be None, 'random' or an array (N, T-1, C), got {controls!r}")
        scale = positive_float(scale, "control_scale")
        return torch.from_numpy(gen.uniform(-scale, scale, (n, n_times - 1, control_dim)))
    controls = as_float_tensor(controls, "controls")
    if controls.shape != (n, n_times - 1, control_dim):
        raise PhysodeError(f"controls must have shape (N, T-1, C) = ({n}, {n_times - 1}, {control_dim}), one control per "
                           f"trajectory and interval, got {tuple(controls.shape)}")
    return controls


def check_fractions(fractions) -> tuple[float, float, float]:
    """``fractions`` checked: three shares (train, val, test) >= 0 summing to 1 with train > 0, as Python floats."""
    problem = "fractions must be three shares (train, val, test) >= 0 summing to 1 with train > 0"
    try:
        shares = np.asarray(fractions, dtype=float)
    except (TypeError, ValueError):
        raise PhysodeError(f"{problem}, got {fractions!r}") from None
    if shares.shape != (3,) or not np.isfinite(shares).all() or (shares < 0).any() or not math.isclose(shares.sum(), 1.0) \
            or shares[0] == 0:
        raise PhysodeError(f"{problem}, got {fractions!r}")
    return tuple(float(f) for f in shares)


def _plain_meta(meta) -> dict:
    """``meta`` as plain JSON values (numpy numbers become Python ones), so that it round-trips through files."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise PhysodeError(f"meta must be a dict of JSON values (numbers, strings, lists, dicts), got {type(meta).__name__}")

    def plain(value):
        if isinstance(value, np.generic | np.ndarray):
            return value.tolist()
        raise PhysodeError(f"meta must hold JSON values (numbers, strings, lists, dicts); {value!r} is a "
                           f"{type(value).__name__}")

    try:
        return json.loads(json.dumps(meta, default=plain))
    except PhysodeError:
        raise
    except (TypeError, ValueError) as exc:  # e.g. keys that JSON cannot write
        raise PhysodeError(f"meta must hold JSON values with string keys: {exc}") from None


def split_codes(n: int, fractions, gen: np.random.Generator, keep_test: bool = False) -> np.ndarray:
    """Split codes ``(N,)`` drawn with ``gen``; ``keep_test``: at least one test trajectory when ``n >= 2`` and one
    validation trajectory when ``n >= 3`` (where the shares would round to none)."""
    n_val, n_test = round(fractions[1] * n), round(fractions[2] * n)
    if keep_test:
        n_test = max(n_test, int(n >= 2 and fractions[2] > 0))
        n_val = max(n_val, int(n >= 3 and fractions[1] > 0))
    if n - n_val - n_test < 1:
        raise PhysodeError(f"with {n} trajectories and fractions {tuple(fractions)} no trajectory is left to train on")
    codes = np.zeros(n, dtype=np.int64)
    order = gen.permutation(n)
    codes[order[n - n_val - n_test : n - n_test]] = 1
    codes[order[n - n_test :]] = 2
    return codes


def _padded_states(x, name: str) -> torch.Tensor:
    """States ``(N, T, D)`` as float64, NaN allowed (past a trajectory's end); anything else non-finite is refused
    by :func:`_only_observed`."""
    if isinstance(x, torch.Tensor) and x.dtype in (torch.float32, torch.float64):
        return x.to(torch.float64)
    array = np.asarray(x) if not isinstance(x, torch.Tensor) else x.numpy()
    if array.dtype.kind == "f":
        return torch.from_numpy(np.array(array, dtype=np.float64))
    return as_float_tensor(x, name)


def _only_observed(x: torch.Tensor, valid: torch.Tensor, name: str) -> torch.Tensor:
    """``x: (N, T, D)`` checked finite where ``valid: (N, T)`` and NaN elsewhere (no observation there)."""
    observed = x[valid]
    if observed.numel() and not all_finite(observed):
        row, col = (~torch.isfinite(x) & valid.unsqueeze(-1)).nonzero()[0, :2].tolist()
        raise PhysodeError(f"{name} must be finite, but trajectory {row} has {x[row, col].tolist()} at observation {col}; "
                           "remove NaN and infinite values (or end the trajectory earlier with lengths)")
    return torch.where(valid.unsqueeze(-1), x, torch.tensor(math.nan, dtype=x.dtype))


def _lengths(lengths, n: int, n_times: int) -> torch.Tensor:
    """``lengths`` checked: ``(N,)`` whole numbers in ``[2, T]`` (default: every trajectory ``T`` long)."""
    if lengths is None:
        return torch.full((n,), n_times, dtype=torch.int64)
    array = np.asarray(lengths)
    if array.shape != (n,) or array.dtype.kind not in "iu" or (array < 2).any() or (array > n_times).any():
        raise PhysodeError(f"lengths must be {n} whole numbers from 2 to {n_times} (observations per trajectory), "
                           f"got {lengths!r}")
    return torch.from_numpy(array.astype(np.int64))


def _padded_grid(t, n: int, lengths: torch.Tensor) -> torch.Tensor:
    """The time grid ``(T,)`` or ``(N, T)``, checked within each trajectory's length; past a trajectory's end a
    per-trajectory grid continues with its last step (solvers need an increasing grid there; nothing is observed)."""
    if not isinstance(t, torch.Tensor):
        t = np.asarray(t)
        t = torch.from_numpy(np.array(t, dtype=np.float64)) if t.dtype.kind == "f" else as_float_tensor(t, "t")
    t = t.to(torch.float64)
    if t.ndim != 2 or bool((lengths == t.shape[-1]).all()) or t.shape[0] != n:
        return time_grid(t, "t", n_trajectories=n)
    rows = []
    for i, length in enumerate(lengths.tolist()):
        own = time_grid(t[i, :length], f"t[{i}]")
        step = own[-1] - own[-2]
        rows.append(torch.cat([own, own[-1] + step * torch.arange(1, t.shape[1] - length + 1, dtype=torch.float64)]))
    return torch.stack(rows)


def _held_controls(u, lengths: torch.Tensor) -> torch.Tensor:
    """Controls ``(N, T-1, C)``, checked within each trajectory; past its end the last control is held (solvers
    need finite inputs there; nothing is observed)."""
    if not isinstance(u, torch.Tensor):
        u = np.asarray(u)
        u = torch.from_numpy(np.array(u, dtype=np.float64)) if u.dtype.kind == "f" else as_float_tensor(u, "u")
    u = u.to(torch.float64)
    if u.ndim != 3 or u.shape[0] != len(lengths) or u.shape[1] < int(lengths.max()) - 1:
        return as_float_tensor(u, "u")  # the shape is reported by the caller
    steps = torch.arange(u.shape[1])
    given = steps[None, :] < (lengths[:, None] - 1)  # (N, T-1): intervals within each trajectory
    observed = u[given]
    if observed.numel() and not all_finite(observed):
        row, col = (~torch.isfinite(u) & given.unsqueeze(-1)).nonzero()[0, :2].tolist()
        raise PhysodeError(f"u must be finite, but trajectory {row} has {u[row, col].tolist()} at interval {col}; remove "
                           "NaN and infinite controls")
    last = u[torch.arange(len(lengths)), (lengths - 2).clamp_min(0)]  # (N, C)
    return torch.where(given.unsqueeze(-1), u, last.unsqueeze(1))


def _unflattened(arrays: dict) -> dict:
    """The padded ``(N, T, ...)`` arrays of a version-2 file, whose trajectories lie one after another."""
    lengths = np.asarray(arrays["lengths"])
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 2).any():
        raise ValueError(f"lengths must be whole numbers >= 2, got {lengths!r}")
    n, longest = len(lengths), int(lengths.max())

    def padded(flat, sizes, width):
        flat = np.asarray(flat)
        if len(flat) != sizes.sum():
            raise ValueError(f"an array holds {len(flat)} rows for trajectories of {int(sizes.sum())} in all")
        out = np.full((n, width, *flat.shape[1:]), np.nan)
        for i, (start, size) in enumerate(zip(np.cumsum(sizes) - sizes, sizes, strict=True)):
            out[i, :size] = flat[start : start + size]
        return out

    result = {"x": padded(arrays["x"], lengths, longest), "x_clean": padded(arrays["x_clean"], lengths, longest)}
    if np.asarray(arrays["t"]).shape != (longest,):  # one grid per trajectory, continued past its end on construction
        result["t"] = padded(arrays["t"], lengths, longest)
    if "u" in arrays:
        result["u"] = padded(arrays["u"], lengths - 1, longest - 1)
    return result


def _trajectory_list(value, name: str, sizes: list[int] | None = None, ndim: int = 2, rule: str = "") -> list[np.ndarray]:
    """``value`` as one float64 array per trajectory: a list of arrays stays one, an array ``(N, T, ...)`` is cut into
    rows, and a shared grid ``(T,)`` (``ndim=1``) is cut to each trajectory's ``sizes`` (of rows, by ``rule``).
    Values are checked later."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        array = _float_array(value, name)
        if ndim == 1 and array.ndim == 1:
            return [array[:k] for k in (sizes or [len(array)])]
        items = list(array)
    if not items:
        raise PhysodeError(f"{name} holds no trajectories; give at least one")
    if sizes is not None and len(items) != len(sizes):
        raise PhysodeError(f"{name} holds {len(items)} trajectories, x holds {len(sizes)}; give one per trajectory")
    arrays = [_float_array(item, f"{name}[{i}]") for i, item in enumerate(items)]
    if sizes is not None:  # an (N, T, ...) array for trajectories of other lengths: cut each row to its own
        arrays = [a[:k] if len(a) >= k else a for a, k in zip(arrays, sizes, strict=True)]
        for i, (a, k) in enumerate(zip(arrays, sizes, strict=True)):
            if len(a) != k:
                raise PhysodeError(f"{name}[{i}] has {len(a)} rows, and trajectory {i} needs {k} ({rule})")
    return arrays


def _float_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 numpy array (finiteness is checked where the values are used)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged nested lists and other non-arrays
        raise PhysodeError(f"{name} must be a real-valued array; could not convert it ({exc})") from None
    if array.dtype.kind not in "fiu":
        raise PhysodeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}; pass floats")
    return array.astype(np.float64)


def _stack(arrays: list[np.ndarray], length: int) -> np.ndarray:
    """``arrays`` of up to ``length`` rows stacked into ``(N, length, ...)``, NaN past each one's end."""
    out = np.full((len(arrays), length, *arrays[0].shape[1:]), np.nan)
    for i, array in enumerate(arrays):
        out[i, : len(array)] = array
    return out
