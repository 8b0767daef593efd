"""Learned dynamics models; each answers ``rollout(x0, t, u=None)`` and ``vector_field(t, x, u=None)``.

``MODELS`` maps the short names used by the CLI (``node``, ``anode``, ``resnet``, ``hnn``, ``interaction``, ``sindy``)
to classes. :class:`Ensemble` holds ``K`` models of one of them.
"""

from .augmented import AugmentedNeuralODE
from .base import ContinuousModel, DynamicsModel
from .ensemble import ContinuousEnsemble, Ensemble, EnsemblePrediction, bootstrap_counts
from .hamiltonian import HamiltonianODE
from .interaction import InteractionODE
from .neural_ode import NeuralODE
from .odeblock import ODEBlock
from .resnet_step import ResNetStep
from .sindy import SINDy
from .vector_field import ACTIVATIONS, MLP, SigmoidForm

MODELS = {"node": NeuralODE, "anode": AugmentedNeuralODE, "resnet": ResNetStep, "hnn": HamiltonianODE,
          "interaction": InteractionODE, "sindy": SINDy}

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MODELS",
    "AugmentedNeuralODE",
    "ContinuousEnsemble",
    "ContinuousModel",
    "DynamicsModel",
    "Ensemble",
    "EnsemblePrediction",
    "HamiltonianODE",
    "InteractionODE",
    "NeuralODE",
    "ODEBlock",
    "ResNetStep",
    "SINDy",
    "SigmoidForm",
    "bootstrap_counts",
]
