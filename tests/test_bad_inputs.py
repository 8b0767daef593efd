"""A corpus of malformed inputs to the Python API, the envs and the CLI: each gives a PhysodeError that
names the argument (the CLI: exit code 2, one line on stderr, no traceback) and leaves every file that
was already there untouched.

(More file cases are in test_data.py and test_checkpoint.py.)
"""

import hashlib
import json

import numpy as np
import pytest
import torch

import physode
from physode import (NBody, NeuralODE, ODEBlock, Pendulum, PhysodeError, SpringMass, TrainConfig, TrajectoryDataset,
                     build_model, collect, compare, fit, load_model, make_system, simulate)
from physode.cli import main
from physode.envs import LearnedDynamicsEnv, PendulumEnv

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
    "unknown system": (lambda: make_system("triple_pendulum"), "unknown system"),
    "unknown parameter": (lambda: make_system("spring_mass", springs=3), "unknown parameter"),
    "negative mass": (lambda: SpringMass(mass=-1.0), "mass"),
    "float body count": (lambda: NBody(n_bodies=2.5), "n_bodies"),
    "float dimension": (lambda: NBody(dim=2.0), "dim must be 2 or 3"),
    "negative step size, adaptive": (lambda: simulate(Pendulum(), X0, T, step_size=-5.0), "step_size"),
    "field state width": (lambda: Pendulum().vector_field(0.0, torch.zeros(5, 3)), "last dimension 2"),
    "field control width": (lambda: Pendulum().vector_field(0.0, torch.zeros(5, 2), torch.zeros(5, 2)), "u must have"),
    "negative seed": (lambda: Pendulum().sample_initial_states(4, seed=-1), "seed"),
    "zero samples": (lambda: NBody().sample_initial_states(0), "n must be"),
    "negative dt": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, -0.1), "dt must be"),
    "zero dt": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.0), "dt must be"),
    "system by name": (lambda: TrajectoryDataset.generate("pendulum", 4, 1.0, 0.1), "physode System"),
    "absurd size": (lambda: TrajectoryDataset.generate(Pendulum(), 10**12, 10.0, 0.1), "GiB"),
    "absurd sample": (lambda: NBody().sample_initial_states(10**12), "sample_initial_states.*GiB"),
    "dataset x shape": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 3), Pendulum().spec()), r"\(N, T, 2\)"),
    "dataset t mismatch": (lambda: TrajectoryDataset(T, torch.zeros(2, 5, 2), Pendulum().spec()), "t has 11 times"),
    "dataset bad split": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec(), split=[0, 5]), "split"),
    "dataset bad part": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec()).part("holdout"), "split name"),
    "dataset empty part": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec()).val,
                           "no val trajectories.*2/0/0"),  # was a shape error about (0, 11, 2)
    "dataset short mask": (lambda: TrajectoryDataset(T, torch.zeros(4, 11, 2), Pendulum().spec()).subset([True, False]),
                           r"mask of shape \(4,\)"),  # silently kept 1 of 4
    "dataset index out of range": (lambda: TrajectoryDataset(T, torch.zeros(4, 11, 2), Pendulum().spec()).subset([4]),
                                   r"\[-4, 4\)"),
    "dataset t_train as text": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec(), t_train="0.5"),
                                "t_train must be a number"),  # was taken as 0.5
    "dataset meta not a dict": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec(), meta=[1, 2]),
                                "meta must be a dict"),
    "dataset meta object": (lambda: TrajectoryDataset(T, torch.zeros(2, 11, 2), Pendulum().spec(), meta={"k": object()}),
                            "meta must hold JSON values"),
    "generate fractions as text": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.1, fractions=("a", "b", "c")),
                                   "fractions"),
    "generate misspelt option": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.1, methd="rk4"),
                                 "unknown option of generate 'methd'.*'method'"),
    "generate controls of the wrong shape": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.1,
                                             controls=np.zeros((4, 1))), r"controls must have shape \(N, T-1, C\)"),
    "generate absurd t_end": (lambda: TrajectoryDataset.generate(Pendulum(), 2, 10**400, 0.1), "t_end"),
    "generate tiny dt": (lambda: TrajectoryDataset.generate(Pendulum(), 4, 1.0, 1e-310), "larger dt"),
    "huge int parameter": (lambda: make_system("pendulum", gravity=10**400), "gravity"),
    "simulate system by name": (lambda: simulate("pendulum", X0, T), "physode System"),
    "unknown model": (lambda: build_model("lstm", _data()), "unknown model"),
    "unknown model solver": (lambda: NeuralODE(2, solver="rk45"), "unknown solver"),
    "fixed solver without step": (lambda: NeuralODE(2, solver="rk4"), "step_size"),
    "model state width vs data": (lambda: fit(NeuralODE(3), _data(), TrainConfig(steps=1)), "state_dim 3"),
    "model controls vs data": (lambda: fit(NeuralODE(2, control_dim=1), _data(), TrainConfig(steps=1)), "controls"),
    "negative learning rate": (lambda: TrainConfig(lr=-1.0), "lr"),
    "seed beyond 64 bits": (lambda: TrainConfig(seed=2**64), "seed must be below 2"),
    "curriculum as text": (lambda: TrainConfig(curriculum="0.5"), "curriculum"),
    "rollout state width": (lambda: NeuralODE(2).rollout(torch.zeros(4, 3), T), r"\(N, 2\)"),
    "compare model width": (lambda: compare({"m": NeuralODE(4)}, _data()), "state_dim 4"),
    "compare model of another system": (lambda: compare({"m": _model_of(Pendulum(length=2.0), controls=0)}, _data()),
                                        "trained on pendulum"),
    "ode block without module": (lambda: ODEBlock(lambda t, z: z), "nn.Module"),
    "ode block decreasing times": (lambda: ODEBlock(torch.nn.Linear(2, 2), solver="euler", step_size=0.1).trajectory(
        torch.zeros(1, 2), [0.0, -1.0]), "strictly increasing"),  # it took one step of 1 (step_size ignored)
    "ode block one time": (lambda: ODEBlock(torch.nn.Linear(2, 2)).trajectory(torch.zeros(1, 2), [0.0]), "at least 2"),
    "adjoint time gradients, own grids": (lambda: NeuralODE(2, adjoint=True).rollout(
        torch.zeros(2, 2), torch.stack([T, 2 * T]).requires_grad_()), "adjoint=False"),  # were silently wrong
    "resnet absurd steps": (lambda: physode.ResNetStep(1, dt=1e-9).rollout(torch.zeros(1, 1), [0.0, 1e4]), "GiB"),
    "field time of another shape": (lambda: NeuralODE(2, time_dependent=True).vector_field(torch.zeros(4), torch.zeros(3, 2)),
                                    "broadcast"),
    "activation as a list": (lambda: NeuralODE(2, activation=["tanh"]), "unknown activation"),
    "env nan start": (lambda: PendulumEnv().reset(options={"state": [np.nan, 0.0]}), "options"),
    "env unknown integrator": (lambda: PendulumEnv(integrator="rk5"), "integrator"),
    "env zero dt": (lambda: PendulumEnv(dt=0.0), "dt"),
    "env symplectic on a damped system": (lambda: PendulumEnv(integrator="leapfrog", damping=0.1), "conservative"),
    "env reset option misspelt": (lambda: PendulumEnv().reset(options={"start": [0.0, 0.0]}), "unknown reset option"),
    "learned env system parameter": (lambda: LearnedDynamicsEnv(_model_of(Pendulum()), gravity=5.0), "from the checkpoint"),
    "env action shape": (lambda: _started(PendulumEnv()).step(np.zeros(3, np.float32)), "shape"),
    "env nan action": (lambda: _started(PendulumEnv()).step(np.array([np.nan], np.float32)), "NaN"),
    "env step before reset": (lambda: PendulumEnv().step(np.zeros(1, np.float32)), "reset"),
    "env model of another system": (lambda: PendulumEnv(dynamics=_model_of(SpringMass())), "trained on spring_mass"),
    "learned env uncontrolled model": (lambda: LearnedDynamicsEnv(_model_of(Pendulum(), controls=0)), "allow_uncontrolled"),
    "collect discrete env": (lambda: collect("CartPole-v1", 1), "Discrete"),
    "collect zero episodes": (lambda: collect("Pendulum-v1", 0), "episodes"),
    "collect negative seed": (lambda: collect("Pendulum-v1", 1, seed=-1), "seed"),
    "collect missing module": (lambda: collect("nomodule:Bar-v0", 1), "nomodule"),
}


def _data():
    return TrajectoryDataset.generate(Pendulum(), 6, 1.0, 0.1, seed=0)


def _started(env):
    env.reset(seed=0)
    return env


def _model_of(system, controls=None):
    model = NeuralODE(system.state_dim, control_dim=system.control_dim if controls is None else controls)
    model.system_spec = system.spec()
    return model


@pytest.mark.parametrize("call, message", CASES.values(), ids=CASES.keys())
def test_bad_input_raises_a_physode_error(call, message):
    with pytest.raises(PhysodeError, match=message):
        call()


def test_files_that_are_not_what_they_claim_are_refused(tmp_path):
    data, checkpoint = tmp_path / "data.npz", tmp_path / "model.pt"
    _data().save(data)
    physode.save_checkpoint(checkpoint, NeuralODE(2), system_spec=Pendulum().spec())
    for path, load in ((data, TrajectoryDataset.load), (checkpoint, load_model)):
        whole = path.read_bytes()
        cut = tmp_path / f"cut{path.suffix}"
        cut.write_bytes(whole[: len(whole) // 2])  # truncated
        flipped = tmp_path / f"flipped{path.suffix}"
        flipped.write_bytes(whole[:100] + bytes(b ^ 0xFF for b in whole[100:300]) + whole[300:])  # corrupt
        other = tmp_path / f"other{path.suffix}"
        other.write_bytes((checkpoint if path == data else data).read_bytes())  # a file of another kind
        for bad in (cut, flipped, other, tmp_path / f"missing{path.suffix}", tmp_path):
            with pytest.raises(PhysodeError):
                load(bad)
    arrays = dict(np.load(data))
    metadata = json.loads(str(arrays["metadata"]))
    for key, value in (("t_train", "abc"), ("meta", ["abc"])):  # well-formed JSON, wrong values
        arrays["metadata"] = np.array(json.dumps({**metadata, key: value}))
        np.savez(tmp_path / "odd.npz", **arrays)
        with pytest.raises(PhysodeError, match="inconsistent dataset"):
            TrajectoryDataset.load(tmp_path / "odd.npz")


def _fingerprint(folder):
    """Every file's hash and every folder (an empty folder left behind counts too)."""
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder with a good dataset, a truncated one, a checkpoint, and a file in the way of an output folder."""
    root = tmp_path_factory.mktemp("cli")
    _data().save(root / "good.npz")
    (root / "cut.npz").write_bytes((root / "good.npz").read_bytes()[:500])
    physode.save_checkpoint(root / "model.pt", NeuralODE(2), system_spec=Pendulum().spec())
    (root / "out.npz").write_bytes(b"an existing output that must survive")
    (root / "blocker").write_text("a file where a folder is expected")
    return root


CLI_CASES = {
    "unknown system": ["simulate", "triple_pendulum", "-o", "{root}/out.npz"],
    "zero trajectories": ["simulate", "pendulum", "--n", "0", "-o", "{root}/out.npz"],
    "negative dt": ["simulate", "pendulum", "--dt", "-0.1", "-o", "{root}/out.npz"],
    "absurd size": ["simulate", "pendulum", "--n", "1000000000000", "-o", "{root}/out.npz"],
    "bad parameter": ["simulate", "pendulum", "--param", "mass=-1", "-o", "{root}/out.npz"],
    "unknown method": ["simulate", "pendulum", "--method", "rk5", "-o", "{root}/out.npz"],
    "unwritable output": ["simulate", "pendulum", "--n", "4", "-o", "{root}/blocker/out.npz"],
    "missing dataset": ["train", "--data", "{root}/missing.npz", "--out", "{root}/run"],
    "truncated dataset": ["train", "--data", "{root}/cut.npz", "--out", "{root}/run"],
    "checkpoint as dataset": ["train", "--data", "{root}/model.pt", "--out", "{root}/run"],
    "unknown model": ["train", "--data", "{root}/good.npz", "--model", "lstm", "--out", "{root}/run"],
    "resume without checkpoint": ["train", "--data", "{root}/good.npz", "--out", "{root}/blocker", "--resume"],
    "compare unknown model": ["compare", "pendulum", "--models", "node,gru", "--out", "{root}/run"],
    "compare horizons beyond data": ["compare", "pendulum", "--reference", "data", "--horizons", "9", "--preset", "smoke",
                                     "--models", "resnet", "--out", "{root}/new-run"],
    "plot a non-run folder": ["plot", "{root}"],
    "collect unknown env": ["collect", "--env", "Nope-v3", "--episodes", "1", "-o", "{root}/out.npz"],
    "collect discrete env": ["collect", "--env", "CartPole-v1", "--episodes", "1", "-o", "{root}/out.npz"],
    "not a number": ["simulate", "pendulum", "--n", "many", "-o", "{root}/out.npz"],
    "float n-body dimension": ["simulate", "nbody", "--n", "4", "--param", "dim=2.0", "-o", "{root}/out.npz"],
    "negative step size": ["simulate", "pendulum", "--n", "4", "--step-size", "-5", "-o", "{root}/new.npz"],
    "output named as a folder": ["simulate", "pendulum", "--n", "4", "-o", "{root}/new-folder/"],
    "resume into a new folder": ["train", "--data", "{root}/good.npz", "--out", "{root}/fresh-run", "--resume"],
    "compare absurd horizons": ["compare", "pendulum", "--preset", "smoke", "--horizons", "1", "1e6", "--out", "{root}/new-run"],
    "absurd batch": ["train", "--data", "{root}/good.npz", "--batch-size", "1000000000000", "--out", "{root}/new-run"],
    "seed beyond 64 bits": ["train", "--data", "{root}/good.npz", "--seed", "18446744073709551616", "--out", "{root}/new-run"],
    "compare without models": ["compare", "pendulum", "--preset", "smoke", "--models", ",", "--out", "{root}/new-run"],
    "collect negative seed": ["collect", "--env", "Pendulum-v1", "--episodes", "1", "--seed", "-1", "-o", "{root}/new.npz"],
    "collect missing module": ["collect", "--env", "nomodule:Bar-v0", "--episodes", "1", "-o", "{root}/new.npz"],
    "compare level outside (0, 1)": ["compare", "pendulum", "--preset", "smoke", "--level", "90", "--out",
                                     "{root}/new-run"],
    "compare ensemble of 0": ["compare", "pendulum", "--preset", "smoke", "--ensemble", "0", "--out", "{root}/new-run"],
    "evaluate level outside (0, 1)": ["evaluate", "{root}/model.pt", "--data", "{root}/good.npz", "--level", "1",
                                      "--out", "{root}/new-run"],
}


@pytest.mark.parametrize("argv", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_bad_command_lines_exit_2_with_one_line_and_touch_nothing(argv, files, capsys):
    before = _fingerprint(files)
    assert main([a.format(root=files) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("physode") and "Traceback" not in captured.err
    assert _fingerprint(files) == before  # nothing changed, nothing added
