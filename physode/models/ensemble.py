"""Ensembles: ``K`` models of one class whose disagreement says how far their prediction can be trusted.

``Ensemble(members)`` holds ``K >= 1`` members of one model class, built alike (one configuration, one state and
control size, one system), in an ``nn.ModuleList``: its ``state_dict`` holds every member, and one optimiser
trains them all. It answers what every model answers, for the members' mean: ``rollout(x0, t, u) -> (N, T, D)``
and ``vector_field(t, x, u)``; :meth:`Ensemble.predict` and :meth:`Ensemble.predict_field` add the spread and
the members' own predictions.

An ensemble of continuous models is a :class:`~physode.models.ContinuousModel` too (an instance of the subclass
:class:`ContinuousEnsemble`, which files and messages call ``Ensemble``): its solver settings are its members'
(setting one sets it on all), and where the members' flow can run on their stacked weights (the neural ODE
family: :class:`~physode.models.NeuralODE`, :class:`~physode.models.AugmentedNeuralODE` and the force form of
:class:`~physode.models.InteractionODE`) one torchdiffeq solve integrates all members at once: the solver state
is ``(K N, S)``, member-major, each row one member's trajectory (so every member's trajectory meets the
tolerances on its own, as in a solve of its own), and each evaluation reshapes it to ``(K, N, S)`` and runs every
member at once through their stacked weights (``functional_call``: the neural ODEs' flow broadcasts over them,
the interaction model's runs under ``vmap``; see :func:`_batched_flow`). Other members (a Hamiltonian
model takes autograd inside its flow, a ResNet step model is discrete, SINDy is fitted by regression) are rolled
out one after the other. The two agree to float rounding with fixed-step solvers; with adaptive ones the batched
solve takes the steps its hardest member needs, so it agrees with the loop to the solver's tolerance.

Bootstrap: ``bootstrap_counts (K, N_train)`` (a buffer, saved and resumed with the weights) holds how often each
member's resample of the training trajectories drew each one (:func:`bootstrap_counts`); the trainer weighs each
window's loss, and each derivative sample of the warm start, by them.
"""

from __future__ import annotations

import typing

import torch
from torch import nn

from ..checks import positive_int, seed_value
from ..errors import PhysodeError
from ..integrate import solve_on_grids
from .augmented import AugmentedNeuralODE
from .base import ContinuousModel, DynamicsModel
from .interaction import InteractionODE
from .neural_ode import NeuralODE


class EnsemblePrediction(typing.NamedTuple):
    """An ensemble's prediction: ``mean`` and ``std`` (the members' spread, population standard deviation: 0 for
    ``K = 1``), each shaped like one model's prediction, and ``members`` with the ``K`` members' own first."""

    mean: torch.Tensor
    std: torch.Tensor
    members: torch.Tensor


def bootstrap_counts(n_trajectories: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(size, n_trajectories)`` int64: for each of ``size`` members, how often its bootstrap resample
    (``n_trajectories`` draws with replacement, by a generator seeded with ``seed``) drew each trajectory; each row
    sums to ``n_trajectories``."""
    n_trajectories, size = positive_int(n_trajectories, "n_trajectories"), positive_int(size, "size")
    generator = torch.Generator().manual_seed(seed_value(seed))
    draws = torch.randint(n_trajectories, (size, n_trajectories), generator=generator)
    return torch.zeros(size, n_trajectories, dtype=torch.int64).scatter_add_(1, draws, torch.ones_like(draws))


class Ensemble(DynamicsModel):
    """``K`` models of one class, built alike; their mean is the ensemble's prediction and their spread its doubt.

    Args:
        members: a list of ``K >= 1`` distinct models of one class with one configuration (state and control
            sizes, hidden sizes, solver, ...) and, where they record one, one system: e.g. from
            ``physode.build_model(name, data, ensemble=K)``, which draws their initial weights one after another.
        bootstrap_counts: ``(K, N_train)`` whole numbers >= 0: how often each member's resample of the training
            trajectories holds each one (:func:`bootstrap_counts`); None: every member trains on every trajectory
            once.

    Normalisation: each member keeps its own ``x_mean`` and ``x_scale``; :meth:`set_normalization` sets all of
    them, and the ensemble's own ``x_mean`` and ``x_scale`` are its first member's.
    """

    def __new__(cls, members=(), *args, **kwargs):
        # continuous members make a ContinuousEnsemble (also when unpickled or deep-copied: then cls is the subclass)
        if cls is Ensemble and isinstance(members, (list, tuple, nn.ModuleList)) and members and all(
                isinstance(m, ContinuousModel) and not isinstance(m, Ensemble) for m in members):
            cls = ContinuousEnsemble
        return super().__new__(cls)

    def __init__(self, members, bootstrap_counts: torch.Tensor | None = None):
        nn.Module.__init__(self)  # the members hold the sizes, weights and normalisation: nothing of its own
        members = _check_members(members)
        self.members = nn.ModuleList(members)
        first = members[0]
        self.state_dim, self.control_dim, self.dtype = first.state_dim, first.control_dim, first.dtype
        self.member_class = type(first)
        specs = []  # the systems the members record (models loaded from checkpoints do)
        for spec in (getattr(m, "system_spec", None) for m in members):
            if spec is not None and spec not in specs:
                specs.append(spec)
        if len(specs) > 1:
            names = " and ".join(f"{s.get('name')} {s.get('params')}" for s in specs[:2])
            raise PhysodeError(f"the members were trained on different systems ({names}); an ensemble holds models "
                               "of one system: pass members trained on the same data")
        if specs:
            self.system_spec = specs[0]
        self.register_buffer("bootstrap_counts", _check_counts(bootstrap_counts, len(members), first.x_mean.device))

    # -- what it is made of -------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """``K``, the number of members."""
        return len(self.members)

    @property
    def x_mean(self) -> torch.Tensor:
        """The first member's ``x_mean`` (:meth:`set_normalization` sets every member's alike)."""
        return self.members[0].x_mean

    @property
    def x_scale(self) -> torch.Tensor:
        """The first member's ``x_scale``."""
        return self.members[0].x_scale

    @property
    def time_dependent(self) -> bool:
        """Whether the members take time as an input."""
        return bool(getattr(self.members[0], "time_dependent", False))

    @property
    def num_parameters(self) -> int:
        """The members' parameters, all together."""
        return sum(m.num_parameters for m in self.members)

    @property
    def dt(self) -> float:
        """The step of step models' members (only an ensemble of step models has one)."""
        if not hasattr(self.members[0], "dt"):
            raise AttributeError(f"an ensemble of {self.member_class.__name__} has no step dt")
        return self.members[0].dt

    @property
    def step(self):
        """``step(x, u=None)``: the mean of the members' steps from ``x: (..., D)`` (only an ensemble of step models
        has it)."""
        if not hasattr(self.members[0], "step"):
            raise AttributeError(f"an ensemble of {self.member_class.__name__} takes no steps of its own")
        return lambda x, u=None: torch.stack([m.step(x, u) for m in self.members]).mean(0)

    def config(self) -> dict:
        """Plain data that :meth:`from_config` rebuilds the ensemble from: the members' class and configuration,
        ``K``, and the number of training trajectories its bootstrap resamples were drawn over (0: none)."""
        counts = self.bootstrap_counts
        return {"member": self.member_class.__name__, "member_config": self.members[0].config(), "size": self.size,
                "bootstrap_trajectories": 0 if counts is None else int(counts.shape[1])}

    @classmethod
    def from_config(cls, config: dict) -> Ensemble:
        """An ensemble of ``config["size"]`` fresh members as :meth:`config` describes them (its weights and bootstrap
        counts to be loaded: ``load_state_dict``). Member classes are looked up among physode's own models."""
        from . import MODELS

        classes = {model.__name__: model for model in MODELS.values()}
        config = dict(config)
        name, options = config.pop("member", None), config.pop("member_config", None)
        size, trajectories = config.pop("size", None), config.pop("bootstrap_trajectories", 0)
        if config:
            raise PhysodeError(f"an ensemble's configuration has no {', '.join(sorted(config))}")
        if name not in classes or not isinstance(options, dict):
            raise PhysodeError(f"an ensemble's members must be one of {', '.join(classes)}, got {name!r}")
        size = positive_int(size, "size")
        trajectories = positive_int(trajectories, "bootstrap_trajectories", minimum=0)
        members = [classes[name](**options) for _ in range(size)]
        counts = torch.ones(size, trajectories, dtype=torch.int64) if trajectories else None  # placeholders
        return cls(members, counts)

    def set_normalization(self, mean, scale) -> None:
        """Set every member's ``x_mean`` and ``x_scale`` (each ``(D,)``; ``scale > 0``)."""
        for member in self.members:
            member.set_normalization(mean, scale)

    def bootstrap_weights(self, rows: torch.Tensor | None) -> torch.Tensor | None:
        """``(K, n)`` in the members' dtype: each member's bootstrap count of the training trajectories ``rows: (n,)``
        (None without bootstrap resamples, or without rows)."""
        if self.bootstrap_counts is None or rows is None:
            return None
        counts = self.bootstrap_counts
        return counts[:, rows.to(counts.device)].to(self.torch_dtype)

    def member_scales(self) -> torch.Tensor:
        """The members' ``x_scale`` stacked: ``(K, D)``."""
        return torch.stack([m.x_scale for m in self.members])

    # -- predictions ----------------------------------------------------------------------------------------------

    def member_rollouts(self, x0, t, u=None) -> torch.Tensor:
        """Every member's rollout: ``(K, N, T, D)`` from ``x0: (N, D)`` on ``t: (T,) | (N, T)`` (``(K, T, D)`` from
        one state ``x0: (D,)``), controls ``u`` as in :meth:`rollout`."""
        x0, times, u, single = self._inputs(x0, t, u)
        y = self._member_solve(x0, times, u)
        return y[:, 0] if single else y

    def rollout(self, x0, t, u=None) -> torch.Tensor:
        """The members' mean rollout ``(N, T, D)`` from ``x0: (N, D)`` on ``t: (T,) | (N, T)``; ``u``: None,
        ``(N, C)`` constant or ``(N, T-1, C)`` held over each interval."""
        return self.member_rollouts(x0, t, u).mean(0)

    def predict(self, x0, t, u=None) -> EnsemblePrediction:
        """``(mean (N, T, D), std (N, T, D), members (K, N, T, D))`` of the members' rollouts (arguments as
        :meth:`rollout`)."""
        return _spread(self.member_rollouts(x0, t, u))

    def member_fields(self, t, x, u=None) -> torch.Tensor:
        """Every member's ``dx/dt`` at states ``x: (..., D)`` with controls ``u: (..., C)``: ``(K, ..., D)``, in ``x``'s
        dtype."""
        return torch.stack([m.vector_field(t, x, u) for m in self.members])

    def vector_field(self, t, x, u=None) -> torch.Tensor:
        """The members' mean field at ``x: (..., D)`` (``u: (..., C)``), shaped like ``x``."""
        return self.member_fields(t, x, u).mean(0)

    def predict_field(self, t, x, u=None) -> EnsemblePrediction:
        """``(mean (..., D), std (..., D), members (K, ..., D))`` of the members' fields at ``x: (..., D)``."""
        return _spread(self.member_fields(t, x, u))

    def _member_solve(self, x0: torch.Tensor, times: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """``(K, N, T, D)`` from checked inputs (``x0 (N, D)``, ``times (N, T)``, ``u (N, T-1, C) | None``)."""
        return torch.stack([m.rollout(x0, times, u) for m in self.members])

    # -- fitted by regression (an ensemble of SINDy models) -------------------------------------------------------

    def fit_samples(self, samples) -> None:
        """Fit every member to derivative samples (:class:`~physode.derivatives.DerivativeSamples`) by its own
        regression, each on its bootstrap resample of them (the samples of each training trajectory repeated as
        often as its count; every sample once without counts, or for samples that do not say their trajectory)."""
        if not hasattr(self.members[0], "fit_samples"):
            raise PhysodeError(f"an ensemble of {self.member_class.__name__} is trained by gradient steps "
                               "(physode.fit), not fitted to samples")
        for k, member in enumerate(self.members):
            if self.bootstrap_counts is None or samples.trajectory is None:
                member.fit_samples(samples)
                continue
            index = torch.repeat_interleave(torch.arange(len(samples.t)),
                                            self.bootstrap_counts[k].cpu()[samples.trajectory])
            member.fit_samples(type(samples)(*(None if part is None else part[index] for part in samples)))


class ContinuousEnsemble(Ensemble, ContinuousModel):
    """An :class:`Ensemble` of continuous models (what ``Ensemble(members)`` makes of them): a
    :class:`~physode.models.ContinuousModel` whose solver settings (``solver``, ``step_size``, ``rtol``, ``atol``,
    ``adjoint``, ``seminorm``, ``max_steps``) are its members' (read from the first, set on all), integrated in
    one batched solve where the members allow it (:attr:`batched`; see the module doc).

    NFE: ``nfe_forward`` counts the evaluations of the last rollout (of the batched field, each of which evaluates
    every member, or the members' own one after another), ``nfe_total`` all of them so far.
    """

    def __init__(self, members, bootstrap_counts: torch.Tensor | None = None):
        super().__init__(members, bootstrap_counts)
        self._batched_evaluations = 0
        self.nfe_forward = 0
        self._after_forward = 0

    solver = property(lambda self: self.members[0].solver, lambda self, v: self._set_all("solver", v))
    step_size = property(lambda self: self.members[0].step_size, lambda self, v: self._set_all("step_size", v))
    rtol = property(lambda self: self.members[0].rtol, lambda self, v: self._set_all("rtol", v))
    atol = property(lambda self: self.members[0].atol, lambda self, v: self._set_all("atol", v))
    adjoint = property(lambda self: self.members[0].adjoint, lambda self, v: self._set_all("adjoint", v))
    seminorm = property(lambda self: self.members[0].seminorm, lambda self, v: self._set_all("seminorm", v))
    max_steps = property(lambda self: self.members[0].max_steps, lambda self, v: self._set_all("max_steps", v))

    def _set_all(self, name: str, value) -> None:
        for member in self.members:
            setattr(member, name, value)

    @property
    def nfe_total(self) -> int:
        """Field evaluations so far: the batched field's and the members' own."""
        return self._batched_evaluations + sum(m.nfe_total for m in self.members)

    @property
    def batched(self) -> bool:
        """Whether one solve integrates every member (their flow runs on their stacked weights): members of the
        neural ODE family (exactly these classes: a subclass may change the flow in ways stacking cannot follow) or
        the force form of the interaction model, without forward hooks on their networks."""
        first = self.members[0]
        family = type(first) in (NeuralODE, AugmentedNeuralODE) or (type(first) is InteractionODE
                                                                     and not first.hamiltonian)
        return family and not any(_has_hooks(m) for m in self.members)

    def solve(self, x0: torch.Tensor, times: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """The members' mean of :meth:`ContinuousModel.solve <physode.models.ContinuousModel.solve>` (its inputs
        already checked): ``(N, T, D)``."""
        return self._member_solve(x0, times, u).mean(0)

    def _member_solve(self, x0, times, u):
        x0, u = self._on_model(x0, u)
        if self.control_dim and u is None:
            raise PhysodeError(
                f"this model takes controls: pass u of shape (N, {self.control_dim}) or (N, T-1, {self.control_dim})"
            )
        start = self.nfe_total
        if self.batched:
            y = self._batched_solve(x0, times, u)
        else:
            y = torch.stack([m.solve(x0, times, u) for m in self.members])
        self.nfe_forward = self.nfe_total - start
        self._after_forward = self.nfe_total
        return y

    def _batched_solve(self, x0, times, u):
        """One solve of all members: rows ``k N + n`` of the solver state are member ``k``'s trajectory ``n``."""
        size, n = self.size, x0.shape[0]
        z0 = torch.cat([m.initial_solver_state(x0) for m in self.members])  # (K N, S)
        # with the adjoint the weights are stacked in every evaluation: its backward solve evaluates the field
        # afresh and differentiates that evaluation with respect to the members' own parameters
        broadcast = broadcasts(self.members[0])
        fixed = None if self.adjoint else _stacked_state(self.members, broadcast)
        flows = {}

        def field(t, z, u):
            self._batched_evaluations += 1
            batched_t = t.ndim > 0
            key = (batched_t, u is not None)
            if key not in flows:
                flows[key] = _batched_flow(self.members[0], 0 if batched_t else None, None if u is None else 0)
            state = fixed if fixed is not None else _stacked_state(self.members, broadcast)
            out = flows[key](state, t.reshape(size, n) if batched_t else t, z.reshape(size, n, -1),
                             None if u is None else u.reshape(size, n, -1))
            return out.reshape(size * n, -1)

        y = solve_on_grids(
            field, z0, times.repeat(size, 1), None if u is None else u.repeat(size, 1, 1), method=self.solver,
            rtol=self.rtol, atol=self.atol, step_size=self.step_size, max_steps=self.max_steps, adjoint=self.adjoint,
            adjoint_options={"norm": "seminorm"} if self.seminorm else None, module=self,
        )  # (K N, T, S)
        return y.reshape(size, n, *y.shape[1:])[..., : self.state_dim]

    def member_fields(self, t, x, u=None):
        """Every member's ``dx/dt`` at ``x: (..., D)``: ``(K, ..., D)`` in ``x``'s dtype, in one batched evaluation
        where the members allow it."""
        if not self.batched:
            return super().member_fields(t, x, u)
        t, z, u = self._field_inputs(t, x, u)
        lead = z.shape[:-1]
        z = z.reshape(-1, self.state_dim)
        t = t.expand(lead).reshape(-1) if t.ndim else t
        u = None if u is None else torch.broadcast_to(u, (*lead, self.control_dim)).reshape(-1, self.control_dim)
        states = torch.stack([m.initial_solver_state(z) for m in self.members])  # (K, M, S)
        flow = _batched_flow(self.members[0], None, None)
        broadcast = broadcasts(self.members[0])
        if broadcast and u is not None:  # the shared controls, once per member
            u = u.expand(self.size, *u.shape)
        out = flow(_stacked_state(self.members, broadcast), t, states, u)[..., : self.state_dim]
        return out.reshape(self.size, *lead, self.state_dim).to(x.dtype)


ContinuousEnsemble.__name__ = "Ensemble"  # one kind of model to checkpoints and messages (the class stays findable
# by its own qualified name for pickling and copies)


class _Flow(nn.Module):
    """A member's ``flow`` as a module's ``forward``, for ``torch.func.functional_call``."""

    def __init__(self, member: ContinuousModel):
        super().__init__()
        self.member = member

    def forward(self, t, z, u):
        return self.member.flow(t, z, u)


def _stacked_state(members, broadcast: bool = False) -> dict:
    """The members' parameters and buffers stacked along a first dimension of size ``K``, under the names
    ``functional_call`` of a :class:`_Flow` takes (differentiable: gradients reach every member's own). With
    ``broadcast``, vectors (biases, normalisation) become ``(K, 1, n)``, which broadcast against states ``(K, M, n)``
    as the matrices ``(K, out, in)`` multiply them (see :meth:`MLP.forward <physode.models.MLP.forward>`)."""
    named = [dict([*m.named_parameters(), *m.named_buffers()]) for m in members]
    stacked = {f"member.{name}": torch.stack([entry[name] for entry in named]) for name in named[0]}
    if broadcast:
        stacked = {name: value.unsqueeze(1) if value.ndim == 2 else value for name, value in stacked.items()}
    return stacked


def _batched_flow(template: ContinuousModel, t_dim, u_dim):
    """``f(state, t, z, u) -> (K, M, S)``: the flow of ``template``'s class with each member's stacked weights
    (``state`` from :func:`_stacked_state`) at its own states ``z: (K, M, S)``; ``t`` and ``u`` batched over the
    members along dimension 0 (``t_dim``, ``u_dim`` = 0: ``(K, M)``, ``(K, M, C)``) or shared (None).

    The neural ODE family's flow is written in operations that broadcast over a leading member dimension, and its
    network multiplies stacked weights batch by batch, so the flow runs once on the stacked state as it is
    (``broadcast`` stacking). Other flows (the interaction model's pair sums) run under ``torch.func.vmap``, with
    gradient recording on: a network of tanh units otherwise takes its sigmoid form, whose folded weights are cached
    between calls, which vmap cannot do (without tensors that require gradients, nothing is recorded)."""
    module = _Flow(template)

    def one(state, t, z, u):
        return torch.func.functional_call(module, state, (t, z, u))

    if broadcasts(template):
        return one
    vmapped = torch.func.vmap(one, in_dims=(0, t_dim, 0, u_dim))

    def flow(state, t, z, u):
        with torch.enable_grad():
            return vmapped(state, t, z, u)

    return flow


def broadcasts(member: ContinuousModel) -> bool:
    """Whether ``member``'s flow broadcasts over stacked members (exactly the neural ODE family's classes)."""
    return type(member) in (NeuralODE, AugmentedNeuralODE)


def _has_hooks(member: nn.Module) -> bool:
    """Whether ``member`` or one of its modules has forward hooks or parametrisations (weight norm, pruning, ...),
    which the stacked weights of a batched solve would pass by."""
    return any(m._forward_hooks or m._forward_pre_hooks or hasattr(m, "parametrizations") for m in member.modules())


def _spread(members: torch.Tensor) -> EnsemblePrediction:
    return EnsemblePrediction(members.mean(0), members.std(0, correction=0), members)


def _check_members(members) -> list:
    """``members`` as a list, or the PhysodeError that says what is wrong with them and how to fix it."""
    if not isinstance(members, (list, tuple, nn.ModuleList)):
        raise PhysodeError(f"members must be a list of K >= 1 models of one class, got {type(members).__name__}; pass "
                           "[model_1, ..., model_K], or build them with physode.build_model(name, data, ensemble=K)")
    members = list(members)
    if not members:
        raise PhysodeError("an ensemble needs at least one member (K >= 1), got none; pass [model_1, ..., model_K], or "
                           "build them with physode.build_model(name, data, ensemble=K)")
    for i, member in enumerate(members):
        if isinstance(member, Ensemble):
            raise PhysodeError(f"member {i} is an Ensemble itself; pass its members (ensemble.members) instead")
        if not isinstance(member, DynamicsModel):
            raise PhysodeError(f"member {i} is a {type(member).__name__}, not a physode model; pass physode models "
                               "(e.g. from physode.build_model)")
        same = next((j for j in range(i) if members[j] is member), None)
        if same is not None:
            raise PhysodeError(f"members {same} and {i} are the same model; pass distinct models "
                               "(copy.deepcopy(model))")
    first = members[0]
    for i, member in enumerate(members[1:], start=1):
        if type(member) is not type(first):
            raise PhysodeError(f"the members must be of one model class, and member {i} is a {type(member).__name__}, "
                               f"member 0 a {type(first).__name__}; build every member with the same class")
        if member.state_dim != first.state_dim:
            raise PhysodeError(f"the members must have one state size, and member {i} has state_dim "
                               f"{member.state_dim}, member 0 {first.state_dim}; build every member for the same data")
        if member.control_dim != first.control_dim:
            raise PhysodeError(f"the members must take one control size, and member {i} has control_dim "
                               f"{member.control_dim}, member 0 {first.control_dim}; build every member for the "
                               "same data")
        theirs, ours = member.config(), first.config()
        if theirs != ours:
            differ = ", ".join(f"{k}={theirs.get(k)!r} vs {ours.get(k)!r}" for k in sorted(set(theirs) | set(ours))
                               if theirs.get(k) != ours.get(k))
            raise PhysodeError(f"the members must share one configuration, and member {i} differs from member 0 in "
                               f"{differ}; build every member with the same options")
        if member.x_mean.device != first.x_mean.device:
            raise PhysodeError(f"member {i} is on {member.x_mean.device}, member 0 on {first.x_mean.device}; move them "
                               "to one device (model.to(device)) first")
    return members


def _check_counts(counts, size: int, device) -> torch.Tensor | None:
    """Bootstrap counts as an int64 ``(K, N)`` tensor on ``device``, or None; the PhysodeError for others."""
    if counts is None:
        return None
    counts = torch.as_tensor(counts)
    whole = not counts.is_floating_point() and not counts.is_complex() and counts.dtype != torch.bool
    if (not whole or counts.ndim != 2 or counts.shape[0] != size or counts.shape[1] == 0 or bool((counts < 0).any())
            or not bool((counts.sum(1) > 0).all())):
        raise PhysodeError(f"bootstrap_counts must be whole numbers >= 0 of shape ({size}, N_train), each row with a "
                           f"positive sum, got {counts.dtype} of shape {tuple(counts.shape)}; draw them with "
                           "physode.models.ensemble.bootstrap_counts(N_train, K, seed)")
    return counts.to(device, torch.int64)
