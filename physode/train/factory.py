"""Models for a dataset: :func:`build_model` sizes one by name, :func:`model_misfit` says why a model cannot fit a
system, and :func:`check_compatible` refuses to train a model on data it does not match."""

from __future__ import annotations

import inspect

from ..checkpoint import refuse_other_system
from ..data import TrajectoryDataset
from ..errors import PhysodeError, unknown_name
from ..models import DynamicsModel


def build_model(name: str, dataset: TrajectoryDataset, **options) -> DynamicsModel:
    """The model called ``name`` (``node``, ``anode``, ``resnet``, ``hnn``) sized for ``dataset``.

    ``ResNetStep`` takes the dataset's step (``meta["dt"]``, else the median spacing of its times). On data of a
    time-dependent system (:attr:`TrajectoryDataset.time_dependent`) the models that take time as an input are
    built with ``time_dependent=True``; the others are refused (:func:`model_misfit`).
    """
    from ..models import MODELS, ResNetStep

    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    cls = MODELS[name]
    problem = model_misfit(name, dataset.state_dim, dataset.time_dependent, dataset.name)
    if problem:
        raise PhysodeError(problem)
    if dataset.time_dependent and "time_dependent" not in options:
        options = {**options, "time_dependent": True}
    sizes = {"state_dim": dataset.state_dim, "control_dim": 0 if dataset.u is None else dataset.u.shape[2]}
    if cls is ResNetStep:
        sizes["dt"] = float(dataset.meta.get("dt") or dataset.times.diff(dim=1).median())
    return cls(**sizes, **options)


def model_misfit(name: str, state_dim: int, time_dependent: bool, system_name: str) -> str | None:
    """Why model ``name`` cannot represent the dynamics of ``system_name`` (``state_dim`` states, a field that depends
    on time itself or not): a one-line message with the fix, or None when it can."""
    from ..models import MODELS

    if time_dependent and "time_dependent" not in inspect.signature(MODELS[name]).parameters:
        return (f"model {name!r} takes no time input, but {system_name} is time-dependent (its field depends on t); "
                "use a model that does (node or anode)")
    if name == "hnn" and state_dim % 2:
        return (f"model 'hnn' needs an even number of states (positions and momenta), and {system_name} has "
                f"{state_dim}; use node, anode or resnet")
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
    if int((dataset.split == 0).sum()) == 0:
        raise PhysodeError("the dataset's training split is empty; regenerate it with a train share > 0")
