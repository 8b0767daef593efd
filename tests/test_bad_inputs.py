"""A corpus of malformed inputs to the Python API: each gives a PhysodeError that names the argument.

(The CLI's bad inputs are in test_cli.py, malformed files in test_data.py.)
"""

import numpy as np
import pytest
import torch

from physode import NBody, Pendulum, PhysodeError, SpringMass, TrajectoryDataset, make_system, simulate

T = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
X0 = torch.zeros(3, 2, dtype=torch.float64)

CASES = {
    "nan state": (lambda: simulate(Pendulum(), [[float("nan"), 0.0]], T), "x0 must be finite"),
    "inf state": (lambda: simulate(Pendulum(), [[0.0, float("inf")]], T), "x0 must be finite"),
    "empty states": (lambda: simulate(Pendulum(), torch.zeros(0, 2), T), "empty"),
    "wrong state width": (lambda: simulate(Pendulum(), torch.zeros(3, 3), T), r"\(N, 2\)"),
    "3-d states": (lambda: simulate(Pendulum(), torch.zeros(2, 3, 2), T), "x0 must have shape"),
    "complex states": (lambda: simulate(Pendulum(), torch.zeros(3, 2, dtype=torch.complex128), T), "real numbers"),
    "bool states": (lambda: simulate(Pendulum(), np.zeros((3, 2), dtype=bool), T), "real numbers"),
    "string states": (lambda: simulate(Pendulum(), [["a", "b"]], T), "real numbers"),
    "ragged states": (lambda: simulate(Pendulum(), [[0.0, 1.0], [1.0]], T), "x0"),
    "times not increasing": (lambda: simulate(Pendulum(), X0, [0.0, 0.5, 0.5, 1.0]), "strictly increasing"),
    "times reversed": (lambda: simulate(Pendulum(), X0, [1.0, 0.5, 0.0]), "strictly increasing"),
    "nan time": (lambda: simulate(Pendulum(), X0, [0.0, float("nan")]), "t must be finite"),
    "one time": (lambda: simulate(Pendulum(), X0, [0.0]), "at least 2"),
    "3-d times": (lambda: simulate(Pendulum(), X0, torch.zeros(3, 2, 2)), "t must have shape"),
    "grid rows mismatch": (lambda: simulate(Pendulum(), X0, T.expand(4, -1)), "4 rows but there are 3"),
    "bad control width": (lambda: simulate(Pendulum(), X0, T, torch.zeros(3, 2)), "u must have shape"),
    "bad control steps": (lambda: simulate(Pendulum(), X0, T, torch.zeros(3, 4, 1)), "u must have shape"),
    "nan control": (lambda: simulate(Pendulum(), X0, T, torch.full((3, 1), float("nan"))), "u must be finite"),
    "negative rtol": (lambda: simulate(Pendulum(), X0, T, rtol=-1e-6), "rtol"),
    "zero step size": (lambda: simulate(Pendulum(), X0, T, method="rk4", step_size=0.0), "step_size"),
    "zero batch size": (lambda: simulate(Pendulum(), X0, T, batch_size=0), "batch_size"),
    "unknown method": (lambda: simulate(Pendulum(), X0, T, method="euler2"), "unknown method"),
    "unknown system": (lambda: make_system("double_pendulum"), "unknown system"),
    "unknown parameter": (lambda: make_system("spring_mass", springs=3), "unknown parameter"),
    "negative mass": (lambda: SpringMass(mass=-1.0), "mass"),
    "float body count": (lambda: NBody(n_bodies=2.5), "n_bodies"),
    "field state width": (lambda: Pendulum().vector_field(0.0, torch.zeros(5, 3)), "last dimension 2"),
    "field control width": (lambda: Pendulum().vector_field(0.0, torch.zeros(5, 2), torch.zeros(5, 2)), "u must have"),
    "negative seed": (lambda: Pendulum().sample_initial_states(4, seed=-1), "seed"),
    "zero samples": (lambda: NBody().sample_initial_states(0), "n must be"),
    "negative dt": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, -0.1), "dt must be"),
    "zero dt": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.0), "dt must be"),
    "system by name": (lambda: TrajectoryDataset.generate("pendulum", 4, 1.0, 0.1), "physode System"),
    "absurd size": (lambda: TrajectoryDataset.generate(Pendulum(), 10**12, 10.0, 0.1), "GiB"),
    "dataset x shape": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 3), Pendulum().spec()), r"\(N, T, 2\)"),
    "dataset t mismatch": (lambda: TrajectoryDataset(T, torch.zeros(2, 5, 2), Pendulum().spec()), "t has 11 times"),
    "dataset bad split": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec(), split=[0, 5]), "split"),
    "dataset bad part": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec()).part("holdout"), "split name"),
}


@pytest.mark.parametrize("call, message", CASES.values(), ids=CASES.keys())
def test_bad_input_raises_a_physode_error(call, message):
    with pytest.raises(PhysodeError, match=message):
        call()
