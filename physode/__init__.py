"""physode: learn the dynamics of physical systems with neural ODEs, and know how far to trust them.

The public API, re-exported from one place:

* systems: :class:`Pendulum`, :class:`SpringMass`, :class:`NBody`, ...; your own as a :class:`System`
  subclass or an :class:`ODESystem` from a function; :func:`register_system`, :func:`make_system`
* simulation: :func:`simulate` (batched float64 ground truth, per-trajectory error control)
* data: :class:`TrajectoryDataset` (generate, split, save, load)
* learned models: :class:`NeuralODE`, :class:`AugmentedNeuralODE`, :class:`ResNetStep`, :class:`HamiltonianODE`;
  ensembles of them: :class:`Ensemble` (-> :class:`EnsemblePrediction`)
* training: :func:`fit`, :class:`TrainConfig`, :func:`build_model`; checkpoints: :func:`load_model`
* evaluation: :func:`compare` -> :class:`Report`; chaos: :func:`largest_lyapunov_exponent`
* trust without the truth (:mod:`physode.uncertainty`): :func:`prediction_interval`, :class:`Calibration`
* errors: :class:`PhysodeError` and its subclasses
"""

from .data import TrajectoryDataset
from .collect import collect
from .evaluate import Report, compare
from .errors import (DataMisfitError, FileFormatError, PhysodeError, PhysodeWarning, SolverError, UnknownNameError,
                     UnknownSystemError)
from .checkpoint import load_model, save_checkpoint
from .models import (MODELS, AugmentedNeuralODE, DynamicsModel, Ensemble, EnsemblePrediction, HamiltonianODE, NeuralODE,
                     ODEBlock, ResNetStep)
from .uncertainty import Calibration, prediction_interval
from .simulate import METHODS, simulate
from .train import TrainConfig, TrainResult, build_model, fit
from .systems import (SYSTEMS, CartPole, DoublePendulum, Duffing, Lorenz, MechanicalSystem, NBody, ODESystem, Pendulum,
                      SpringMass, System, VanDerPol, make_system, register_system, resolve_system, system_from_spec)
from .lyapunov import finite_time_lyapunov_exponents, largest_lyapunov_exponent

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "MODELS",
    "AugmentedNeuralODE",
    "Calibration",
    "CartPole",
    "DoublePendulum",
    "Duffing",
    "Lorenz",
    "DynamicsModel",
    "Ensemble",
    "EnsemblePrediction",
    "HamiltonianODE",
    "NeuralODE",
    "ODESystem",
    "ODEBlock",
    "ResNetStep",
    "SYSTEMS",
    "FileFormatError",
    "MechanicalSystem",
    "NBody",
    "Pendulum",
    "PhysodeError",
    "PhysodeWarning",
    "Report",
    "DataMisfitError",
    "SolverError",
    "SpringMass",
    "VanDerPol",
    "System",
    "TrajectoryDataset",
    "UnknownNameError",
    "UnknownSystemError",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "build_model",
    "collect",
    "compare",
    "finite_time_lyapunov_exponents",
    "fit",
    "largest_lyapunov_exponent",
    "load_model",
    "save_checkpoint",
    "make_system",
    "prediction_interval",
    "register_system",
    "resolve_system",
    "simulate",
    "system_from_spec",
]
