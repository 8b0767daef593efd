"""Models for a dataset: :func:`build_model` sizes one (or an ensemble of them) by name, :func:`model_misfit` says why
a model cannot fit a system, and :func:`check_compatible` refuses to train a model on data it does not match."""

from __future__ import annotations

import inspect
import numbers

from ..checkpoint import refuse_other_system
from ..checks import seed_value
from ..data import TrajectoryDataset
from ..errors import PhysodeError, unknown_name
from ..models import DynamicsModel


def build_model(name: str, dataset: TrajectoryDataset, *, ensemble: int | None = None, bootstrap: bool = True,
                bootstrap_seed: int = 0, **options) -> DynamicsModel:
    """The model called ``name`` (``node``, ``anode``, ``resnet``, ``hnn``, ``interaction``, ``sindy``) sized for
    ``dataset``; with ``ensemble=K``, an :class:`~physode.Ensemble` of ``K`` of them.

    Ensembles: the members are built one after another, their initial weights drawn from torch's global generator
    (``torch.manual_seed(s)`` before the call repeats them). With ``bootstrap`` (the default) each member trains on
    its own bootstrap resample of the training trajectories, drawn with ``bootstrap_seed``
    (:func:`~physode.models.bootstrap_counts`, kept in the ensemble's ``bootstrap_counts``); without it every member
    trains on all of them and the members differ by their initial weights only. ``bootstrap`` and
    ``bootstrap_seed`` play no part without ``ensemble``.

    ``ResNetStep`` takes the dataset's step (``meta["dt"]``, else the median spacing of its times). On data of a
    time-dependent system (:attr:`TrajectoryDataset.time_dependent`) the models that take time as an input are
    built with ``time_dependent=True``; the others are refused (:func:`model_misfit`). The interaction model takes
    its bodies from an n-body dataset's system, or from ``n_bodies`` and ``dim`` in ``options`` for other particle
    data (states ``[q_1..q_n, v_1..v_n]``). Options a model does not take (e.g. ``hidden`` for sindy) are refused.
    """
    from ..models import MODELS, Ensemble, InteractionODE, ResNetStep, bootstrap_counts

    if ensemble is not None:
        if isinstance(ensemble, bool) or not isinstance(ensemble, numbers.Integral) or ensemble < 1:
            raise PhysodeError(f"ensemble must be a whole number of members >= 1, got {ensemble!r}; pass e.g. "
                               "ensemble=5, or leave it out for one model")
        if not isinstance(bootstrap, bool):
            raise PhysodeError(f"bootstrap must be True or False, got {bootstrap!r}")
        seed = seed_value(bootstrap_seed, "bootstrap_seed")
        members = [build_model(name, dataset, **options) for _ in range(int(ensemble))]
        counts = bootstrap_counts(len(dataset.train), int(ensemble), seed) if bootstrap else None
        return Ensemble(members, counts)

    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    cls = MODELS[name]
    controls = 0 if dataset.u is None else dataset.u.shape[2]
    particles = particles_of(dataset, options)
    problem = model_misfit(name, dataset.state_dim, dataset.time_dependent, dataset.name, controls, particles)
    if problem:
        raise PhysodeError(problem)
    if dataset.time_dependent and "time_dependent" not in options:
        options = {**options, "time_dependent": True}
    taken = inspect.signature(cls).parameters
    for key in options:
        if key not in taken:
            raise unknown_name(f"option of model {name!r}", key, [k for k in taken if k not in ("state_dim", "control_dim")])
    if cls is InteractionODE:
        return cls(**{"n_bodies": particles[0], "dim": particles[1], **options})
    sizes = {"state_dim": dataset.state_dim, "control_dim": controls}
    if cls is ResNetStep:
        sizes["dt"] = float(dataset.meta.get("dt") or dataset.times.diff(dim=1).median())
    return cls(**sizes, **options)


def particles_of(dataset: TrajectoryDataset, options: dict | None = None) -> tuple[int, int] | None:
    """``(n_bodies, dim)`` of particle data: from ``options`` when given there, else from an n-body dataset's system;
    None for data that are not known to be particles."""
    options = options or {}
    if "n_bodies" in options or "dim" in options:
        return options.get("n_bodies"), options.get("dim", 2)
    spec = dataset.system_spec
    if spec is not None and spec.get("name") == "nbody":
        params = spec.get("params", {})
        return params.get("n_bodies", 3), params.get("dim", 2)
    return None


def model_misfit(name: str, state_dim: int, time_dependent: bool, system_name: str, controls: int = 0,
                 particles: tuple[int, int] | None = None) -> str | None:
    """Why model ``name`` cannot represent the dynamics of ``system_name`` (``state_dim`` states, ``controls`` inputs, a
    field that depends on time itself or not, ``particles = (n_bodies, dim)`` where known): a one-line message with
    the fix, or None when it can."""
    from ..models import MODELS
    from ..models.sindy import INSTALL, has_pysindy

    if time_dependent and "time_dependent" not in inspect.signature(MODELS[name]).parameters:
        return (f"model {name!r} takes no time input, but {system_name} is time-dependent (its field depends on t); "
                "use a model that does (node or anode)")
    if name == "hnn" and state_dim % 2:
        return (f"model 'hnn' needs an even number of states (positions and momenta), and {system_name} has "
                f"{state_dim}; use node, anode or resnet")
    if name == "interaction":
        if particles is None or not all(isinstance(k, int) for k in particles) or 2 * particles[0] * particles[1] != state_dim:
            return (f"model 'interaction' needs a particle system, states [q_1..q_n, v_1..v_n] such as nbody, and "
                    f"{system_name} is not known to be one; for particle data of your own pass n_bodies and dim "
                    f"(2 n_bodies dim = {state_dim}) to build_model, or use node or anode")
        if controls:
            return f"model 'interaction' takes no controls, and {system_name}'s data have {controls}; use node or anode"
    if name == "sindy" and not has_pysindy():
        return INSTALL
    return None


def check_compatible(model: DynamicsModel, dataset: TrajectoryDataset) -> None:
    """Refuse, with the fix, a ``model`` whose states, controls, time input or system do not match ``dataset``'s,
    and a dataset with no training trajectories."""
    if model.state_dim != dataset.state_dim:
        raise PhysodeError(
            f"the model has state_dim {model.state_dim} but the dataset ({dataset.name}) has {dataset.state_dim} states; "
            f"build the model with state_dim={dataset.state_dim}"
        )
    data_controls = 0 if dataset.u is None else dataset.u.shape[2]
    if model.control_dim != data_controls:
        raise PhysodeError(
            f"the model takes {model.control_dim} controls but the dataset has {data_controls}; "
            f"build the model with control_dim={data_controls}"
        )
    if dataset.time_dependent and not getattr(model, "time_dependent", False):
        raise PhysodeError(f"{dataset.name} is time-dependent (its field depends on t), and this {type(model).__name__} takes "
                           "no time input; build it with time_dependent=True (physode.build_model does), or use node or anode")
    refuse_other_system(model, dataset.system_spec, "the dataset", "train a fresh model for this system")
    n_train = int((dataset.split == 0).sum())
    if n_train == 0:
        raise PhysodeError("the dataset's training split is empty; regenerate it with a train share > 0")
    counts = getattr(model, "bootstrap_counts", None)
    if counts is not None and counts.shape[1] != n_train:
        raise PhysodeError(f"the ensemble's bootstrap resamples were drawn over {counts.shape[1]} training "
                           f"trajectories, and the dataset ({dataset.name}) has {n_train}; build the ensemble for this "
                           "dataset (physode.build_model(name, data, ensemble=K))")
