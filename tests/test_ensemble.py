"""Ensembles: distinct members, one batched solve equal to the loop over members, the mean and spread of their
predictions, bootstrap weights in both training phases, one checkpoint, bit-identical resume, and bad input."""

import copy
import math
import os
import signal
import subprocess
import sys

import pytest
import torch

import physode
from physode import (Ensemble, FileFormatError, PhysodeError, TrainConfig, TrajectoryDataset, build_model, fit,
                     load_model)
from physode.checkpoint import save_checkpoint
from physode.cli import main
from physode.collocation import field_samples, fit_field
from physode.derivatives import estimate_derivatives
from physode.distributed import World
from physode.models import ContinuousEnsemble, ContinuousModel, bootstrap_counts
from physode.train import WindowLoss, WindowSampler, read_metrics
from runs import assert_same_run

FAST = {"steps": 12, "batch_size": 8, "window": 4, "val_every": 4, "warm_start_steps": 40}


@pytest.fixture(scope="module")
def data():
    return TrajectoryDataset.generate(physode.Pendulum(), 16, t_end=2.0, dt=0.1, seed=2)


@pytest.fixture(scope="module")
def trained(data):
    torch.manual_seed(1)
    ensemble = build_model("node", data, ensemble=3, hidden=8)
    fit(ensemble, data, TrainConfig(**FAST))
    return ensemble


def _perturbed(model, seed):
    """``model`` with random last layers and its own normalisation (a fresh model is the zero field)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
        d = model.state_dim
        model.set_normalization(0.1 * torch.randn(d, generator=generator), 1 + torch.rand(d, generator=generator))
    return model


def _looped(monkeypatch):
    monkeypatch.setattr(ContinuousEnsemble, "batched", property(lambda self: False))


def test_members_are_drawn_one_after_another_and_the_same_seed_repeats_them(data):
    torch.manual_seed(0)
    ensemble = build_model("node", data, ensemble=3, hidden=8)
    assert isinstance(ensemble, Ensemble) and isinstance(ensemble, ContinuousModel) and ensemble.size == 3
    assert type(ensemble).__name__ == "Ensemble" and ensemble.batched
    first = [m.net[0].weight for m in ensemble.members]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    torch.manual_seed(0)
    again = build_model("node", data, ensemble=3, hidden=8)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in ensemble.state_dict().items())
    counts = ensemble.bootstrap_counts
    n_train = len(data.train)
    assert counts.shape == (3, n_train) and (counts.sum(1) == n_train).all() and not torch.equal(counts[0], counts[1])
    assert torch.equal(counts, bootstrap_counts(n_train, 3, 0))
    assert not torch.equal(counts, build_model("node", data, ensemble=3, hidden=8, bootstrap_seed=1).bootstrap_counts)
    assert build_model("node", data, ensemble=3, hidden=8, bootstrap=False).bootstrap_counts is None
    assert ensemble.num_parameters == 3 * ensemble.members[0].num_parameters


def test_trained_members_differ_and_the_mean_is_the_members_average(trained, data):
    last = [m.net[-1].weight for m in trained.members]
    assert all(w.abs().sum() > 0 for w in last) and not torch.equal(last[0], last[1])
    x0, t = data.test.x[:, 0], data.test.t
    ensemble = copy.deepcopy(trained)
    ensemble.solver, ensemble.step_size = "rk4", 0.05  # set on every member
    assert all(m.solver == "rk4" and m.step_size == 0.05 for m in ensemble.members)
    with torch.no_grad():
        own = torch.stack([m.rollout(x0, t) for m in ensemble.members])
        prediction = ensemble.predict(x0, t)
        torch.testing.assert_close(ensemble.rollout(x0, t), own.mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(prediction.members, own, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(prediction.std, own.std(0, correction=0), rtol=1e-4, atol=1e-6)
        assert prediction.mean.shape == (len(x0), len(t), 2) and float(prediction.std.max()) > 1e-4
        # the models' own adaptive solver: the batched solve steps as its hardest member needs, within tolerance
        adaptive = torch.stack([m.rollout(x0, t) for m in trained.members]).mean(0)
        torch.testing.assert_close(trained.rollout(x0, t), adaptive, rtol=1e-4, atol=1e-5)
        states = data.test.x[:, :5].reshape(-1, 2)
        fields = torch.stack([m.vector_field(0.0, states) for m in trained.members])
        torch.testing.assert_close(trained.vector_field(0.0, states), fields.mean(0), rtol=1e-5, atol=1e-6)
        spread = trained.predict_field(0.0, states)
        assert spread.members.shape == (3, len(states), 2) and spread.std.shape == states.shape


@pytest.mark.parametrize("name, options", [("node", {}), ("anode", {"augment_dim": 1}),
                                           ("node", {"time_dependent": True}),
                                           ("node", {"control_dim": 1}), ("interaction", {"n_bodies": 2, "dim": 1})])
def test_one_batched_solve_equals_the_loop_over_members_with_its_gradients(name, options, monkeypatch):
    torch.manual_seed(2)
    cls = physode.models.MODELS[name]
    sizes = {} if name == "interaction" else {"state_dim": 2}
    members = [_perturbed(cls(**sizes, **options, hidden=8, dtype="float64", solver="rk4", step_size=0.05), seed)
               for seed in range(3)]
    ensemble = Ensemble(members)
    assert ensemble.batched
    d = ensemble.state_dim
    apart = torch.tensor([0.0, 2.0, 0.0, 0.0], dtype=torch.float64) if name == "interaction" else 0.0  # two bodies
    x0 = (0.2 if name == "interaction" else 1.0) * torch.randn(5, d, dtype=torch.float64) + apart
    t = torch.sort(torch.rand(5, 7, dtype=torch.float64), dim=1).values  # a grid per trajectory
    u = torch.randn(5, 6, 1, dtype=torch.float64) if "control_dim" in options else None

    def run():
        ensemble.zero_grad()
        y = ensemble.member_rollouts(x0, t, u)
        (y**2).sum().backward()
        return y.detach(), [p.grad.clone() for p in ensemble.parameters()], ensemble.nfe_forward

    batched, batched_grads, batched_nfe = run()
    states = x0[:3]
    batched_fields = ensemble.member_fields(0.3, states, None if u is None else u[:3, 0])
    _looped(monkeypatch)
    looped, looped_grads, looped_nfe = run()
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)
    for a, b in zip(batched_grads, looped_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert looped_nfe == 3 * batched_nfe > 0  # one batched evaluation is one evaluation of every member
    torch.testing.assert_close(batched_fields, ensemble.member_fields(0.3, states, None if u is None else u[:3, 0]),
                               rtol=1e-12, atol=1e-12)


def test_the_batched_adjoint_gives_the_gradients_of_direct_backprop():
    torch.manual_seed(3)
    members = [_perturbed(physode.NeuralODE(2, hidden=8, dtype="float64", rtol=1e-9, atol=1e-10), s) for s in range(2)]
    ensemble = Ensemble(members)
    x0, t = torch.randn(4, 2, dtype=torch.float64), torch.linspace(0, 1, 5, dtype=torch.float64)

    def gradients():
        ensemble.zero_grad()
        (ensemble.rollout(x0, t) ** 2).sum().backward()
        return [p.grad.clone() for p in ensemble.parameters()]

    direct = gradients()
    ensemble.adjoint = True
    assert all(m.adjoint for m in ensemble.members)
    for a, b in zip(direct, gradients(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_the_spread_is_zero_for_identical_members_and_one_member_is_its_own_mean():
    torch.manual_seed(4)
    model = _perturbed(physode.NeuralODE(2, hidden=8), 0)
    x0, t = torch.randn(6, 2), torch.linspace(0, 2, 9)
    same = Ensemble([copy.deepcopy(model) for _ in range(3)])
    with torch.no_grad():
        prediction = same.predict(x0, t)
        torch.testing.assert_close(prediction.std, torch.zeros_like(prediction.std), rtol=0, atol=1e-6)
        one = Ensemble([copy.deepcopy(model)]).predict(x0, t)
        assert torch.equal(one.std, torch.zeros_like(one.std))
        torch.testing.assert_close(one.mean, model.rollout(x0, t), rtol=1e-5, atol=1e-6)
        different = Ensemble([copy.deepcopy(model), _perturbed(copy.deepcopy(model), 1)]).predict(x0, t)
        assert float(different.std.min()) >= 0 and float(different.std[:, 1:].mean()) > 1e-3


def test_the_window_loss_weighs_each_members_windows_by_its_bootstrap_counts(trained, data):
    windows = WindowSampler(data.train, torch.float32, 0, torch.device("cpu"), World())
    x, t, u, mask, scale = windows.sample(8, 4)
    rows = windows.rows
    ensemble = copy.deepcopy(trained)
    ensemble.solver, ensemble.step_size = "rk4", 0.05  # as in training: the batched solve is the members' own
    total = WindowLoss(ensemble)(x, t, u, mask, scale, rows)
    expected = 0.0
    for k, member in enumerate(ensemble.members):  # each window repeated as often as its trajectory was drawn
        repeat = ensemble.bootstrap_counts[k][rows]
        index = torch.repeat_interleave(torch.arange(len(rows)), repeat)
        expected = expected + WindowLoss(member)(x[index], t[index], u, mask[index], scale)
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=0)
    # in a data-parallel run each rank keeps the global rows of its own windows
    parts = [WindowSampler(data.train, torch.float32, 0, torch.device("cpu"), World(rank, 2)) for rank in (0, 1)]
    for rank, part in enumerate(parts):
        part.sample(8, 4)
        assert (part.rows % 2 == rank).all()
    assert sorted(torch.cat([p.rows for p in parts]).tolist()) == sorted(rows.tolist())


def test_the_warm_start_fits_each_member_to_its_own_resample_of_the_derivatives(data):
    samples = estimate_derivatives(data)
    train = data.train
    where = (train.x[samples.trajectory] - samples.x[:, None]).abs().sum(-1).min(-1).values
    assert torch.equal(where, torch.zeros_like(where))  # each sample is an observation of the trajectory it names
    irregular = TrajectoryDataset.generate(physode.Pendulum(), 8, t_end=2.0, dt=0.1, seed=3, irregular=True)
    spline = estimate_derivatives(irregular, "spline")
    assert (irregular.train.x[spline.trajectory] - spline.x[:, None]).abs().sum(-1).min(-1).values.max() == 0
    torch.manual_seed(5)
    ensemble = build_model("node", data, ensemble=2, hidden=8)
    ensemble.set_normalization(torch.zeros(2), torch.ones(2))
    samples = field_samples(ensemble, data)
    generator = torch.Generator().manual_seed(7)
    rows = torch.randint(len(samples.t), (64,), generator=generator)
    with torch.no_grad():
        _perturbed(ensemble, 0)
        fields = ensemble.member_fields(samples.t[rows].float(), samples.x[rows].float())
        dxdt = samples.dxdt.float()
        spread = dxdt.std(0)
        errors = (((fields - dxdt[rows]) / spread) ** 2).mean(-1)
        counts = ensemble.bootstrap_counts[:, samples.trajectory[rows]]
        expected = float((errors * counts).mean(-1).sum())
    first = fit_field(ensemble, samples, steps=1, batch_size=64, seed=7)[0]  # the loss before any step
    assert first == pytest.approx(expected, rel=1e-5)


def test_an_ensemble_of_one_without_bootstrap_trains_as_its_member_alone(data):
    config = TrainConfig(**FAST)
    torch.manual_seed(6)
    single = fit(build_model("node", data, hidden=8), data, config).model
    torch.manual_seed(6)
    ensemble = fit(build_model("node", data, ensemble=1, bootstrap=False, hidden=8), data, config).model
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ensemble.members[0].state_dict()[name], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet", "hnn", "sindy"])
def test_members_that_cannot_be_batched_train_one_after_another(name, data):
    pytest.importorskip("pysindy") if name == "sindy" else None
    torch.manual_seed(7)
    options = {} if name == "sindy" else {"hidden": 8}
    ensemble = build_model(name, data, ensemble=2, **options)
    assert not getattr(ensemble, "batched", False)
    assert isinstance(ensemble, ContinuousModel) == (name != "resnet")
    result = fit(ensemble, data, TrainConfig(**{**FAST, "steps": 4}))
    assert math.isfinite(result.best_val_error)
    with torch.no_grad():
        prediction = ensemble.predict(data.test.x[:, 0], data.test.t)
    assert prediction.members.shape == (2, *data.test.x.shape) and torch.isfinite(prediction.mean).all()
    if name == "sindy":  # each member's regression on its own resample of the derivative estimates
        assert len(result.history[0]["equations"]) == 2
    if name == "resnet":
        assert ensemble.dt == pytest.approx(0.1)
        assert ensemble.step(data.test.x[:, 0].float()).shape == (len(data.test), 2)


def test_a_checkpoint_round_trips_bit_for_bit(trained, data, tmp_path):
    save_checkpoint(tmp_path / "ensemble.pt", trained, system_spec=data.system_spec)
    loaded = load_model(tmp_path / "ensemble.pt", expected=Ensemble)
    assert isinstance(loaded, ContinuousModel) and loaded.size == 3 and loaded.config() == trained.config()
    assert loaded.system_spec == data.system_spec
    state, again = trained.state_dict(), loaded.state_dict()
    assert list(state) == list(again) and "bootstrap_counts" in state
    assert all(torch.equal(value, again[name]) for name, value in state.items())
    with torch.no_grad():
        x0, t = data.test.x[:, 0], data.test.t
        assert torch.equal(trained.rollout(x0, t), loaded.rollout(x0, t))
    torch.manual_seed(8)
    steps = build_model("resnet", data, ensemble=2, hidden=8)
    save_checkpoint(tmp_path / "steps.pt", steps)
    loaded = load_model(tmp_path / "steps.pt")
    assert isinstance(loaded, Ensemble) and not isinstance(loaded, ContinuousModel)
    assert loaded.bootstrap_counts is not None
    assert all(torch.equal(value, loaded.state_dict()[name]) for name, value in steps.state_dict().items())


def test_an_interrupted_ensemble_run_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    import physode.train.loop as loop

    config = TrainConfig(**FAST, checkpoint_every=1000)
    torch.manual_seed(9)
    fit(build_model("node", data, ensemble=3, hidden=8), data, config, out_dir=tmp_path / "reference")
    step = loop._train_step

    def interrupted_after_step_6(run, state):
        stopped = step(run, state)
        if state.step == 6:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between two steps
        return stopped

    monkeypatch.setattr(loop, "_train_step", interrupted_after_step_6)
    torch.manual_seed(9)
    stopped = fit(build_model("node", data, ensemble=3, hidden=8), data, config, out_dir=tmp_path / "run")
    assert stopped.stopped == "interrupted" and stopped.steps == 6
    monkeypatch.setattr(loop, "_train_step", step)
    torch.manual_seed(10)  # the resumed run takes nothing from the global generator
    resumed = fit(build_model("node", data, ensemble=3, hidden=8), data, config, out_dir=tmp_path / "run", resume=True)
    assert resumed.steps == FAST["steps"]
    assert_same_run(tmp_path / "reference", tmp_path / "run")
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[0]["phase"] == "warm_start"


def _refused(match, call, *args, error=PhysodeError, **kwargs):
    with pytest.raises(error, match=match) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_bad_input_is_refused_with_the_fix(data, tmp_path):
    node = physode.NeuralODE(2, hidden=8)
    _refused("one model class.*build every member with the same class", Ensemble,
             [node, physode.HamiltonianODE(2, hidden=8)])
    _refused("one state size.*state_dim 4", Ensemble, [node, physode.NeuralODE(4, hidden=8)])
    _refused("one control size", Ensemble, [node, physode.NeuralODE(2, hidden=8, control_dim=1)])
    _refused("one configuration.*hidden=16 vs 8", Ensemble, [node, physode.NeuralODE(2, hidden=16)])
    _refused("at least one member", Ensemble, [])
    _refused("distinct models", Ensemble, [node, node])
    _refused("a list of K >= 1 models", Ensemble, node)
    for size in (0, 1.5, True, "3"):
        _refused("ensemble must be a whole number of members >= 1.*ensemble=5", build_model, "node", data,
                 ensemble=size)
    _refused("bootstrap must be True or False", build_model, "node", data, ensemble=2, bootstrap="yes")
    _refused("bootstrap_counts must be whole numbers", Ensemble, [node], bootstrap_counts=torch.ones(1, 4))
    other = copy.deepcopy(node)
    node.system_spec, other.system_spec = data.system_spec, physode.SpringMass().spec()
    _refused("different systems", Ensemble, [node, other])
    fewer = TrajectoryDataset.generate(physode.Pendulum(), 8, t_end=2.0, dt=0.1, seed=4)
    _refused(f"drawn over {len(data.train)} training trajectories.*build the ensemble for this dataset", fit,
             build_model("node", data, ensemble=2, hidden=8), fewer, TrainConfig(**FAST))
    save_checkpoint(tmp_path / "single.pt", physode.NeuralODE(2, hidden=8))
    _refused("holds a NeuralODE, not an Ensemble; train an ensemble", load_model, tmp_path / "single.pt",
             expected=Ensemble, error=FileFormatError)


def test_cli_trains_an_ensemble(data, tmp_path, capsys):
    path = data.save(tmp_path / "pendulum.npz")
    common = ["train", "--data", str(path), "--model", "node", "--steps", "4", "--batch-size", "8", "--val-every", "2",
              "--no-warm-start", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "run"), "--ensemble", "3"]) == 0
    assert "an ensemble of 3 node models" in capsys.readouterr().out
    model = load_model(tmp_path / "run" / "model.pt", expected=Ensemble)
    assert model.size == 3 and model.bootstrap_counts is not None and model.training_info["steps"] == 4
    assert main([*common, "--out", str(tmp_path / "plain"), "--no-bootstrap"]) == 2
    assert "pass --ensemble K" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "zero"), "--ensemble", "0"]) == 2


def test_two_processes_train_the_same_ensemble_as_one(data, tmp_path):
    """Under torchrun each rank weighs its own windows by the counts of their global trajectories."""
    path = data.save(tmp_path / "pendulum.npz")
    common = ["-m", "physode", "train", "--data", str(path), "--steps", "12", "--batch-size", "8", "--val-every", "4",
              "--seed", "3", "--device", "cpu", "--quiet", "--ensemble", "3"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    for command, out in (([sys.executable], "one"), (launcher, "two")):
        done = subprocess.run([*command, *common, "--out", str(tmp_path / out)], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = (torch.load(tmp_path / out / "model.pt", weights_only=True)["model"]["state_dict"]
                for out in ("one", "two"))
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
