"""The trainer: it learns, it records, it checkpoints and resumes, and it survives solver failures."""

import copy
import json
import math

import pytest
import torch

import physode
from physode import PhysodeError, SolverError, TrainConfig, TrajectoryDataset, build_model, fit, load_model
from physode.cli import main
from physode.train import _WindowLoss, read_metrics


@pytest.fixture(scope="module")
def spring_data():
    """The single walled mass, x'' = -2x: a linear system with matrix A = [[0, 1], [-2, 0]]."""
    return TrajectoryDataset.generate(physode.SpringMass(), 48, t_end=3.0, dt=0.1, seed=1, t_train=3.0)


@pytest.fixture(scope="module")
def small_pendulum():
    return TrajectoryDataset.generate(physode.Pendulum(), 16, t_end=2.0, dt=0.1, seed=2)


def test_a_neural_ode_recovers_a_linear_systems_matrix(spring_data):
    torch.manual_seed(0)
    model = physode.NeuralODE(2, hidden=32, dtype="float64", rtol=1e-6, atol=1e-8)
    result = fit(model, spring_data, TrainConfig(warm_start=False, steps=250, batch_size=32, window=8, window_start=2, val_every=50, lr=1e-2))
    assert result.steps == 250 and result.stopped == "steps" and result.best_val_error < 0.05
    x = spring_data.x_clean.reshape(-1, 2)
    with torch.no_grad():
        learned = model.vector_field(0.0, x)
    matrix = torch.linalg.lstsq(x, learned).solution.T  # the linear map that best explains the learned field
    torch.testing.assert_close(matrix, torch.tensor([[0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64), rtol=0, atol=0.1)
    truth = physode.SpringMass().vector_field(0.0, x)
    assert ((learned - truth).norm() / truth.norm()).item() < 0.05


def test_training_writes_metrics_and_checkpoints_and_the_same_seed_repeats(small_pendulum, tmp_path):
    config = TrainConfig(warm_start=False, steps=20, batch_size=8, window=4, val_every=5, checkpoint_every=10)
    runs = []
    for name in ("a", "b"):
        torch.manual_seed(3)
        model = build_model("node", small_pendulum, hidden=16)
        runs.append(fit(model, small_pendulum, config, out_dir=tmp_path / name))
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [5, 10, 15, 20] and all(line["nfe_forward"] > 0 for line in lines)
    for key, value in runs[0].model.state_dict().items():
        assert torch.equal(value, runs[1].model.state_dict()[key]), key
    loaded = load_model(tmp_path / "a" / "model.pt")
    assert isinstance(loaded, physode.NeuralODE) and loaded.system_spec["name"] == "pendulum"
    for key, value in runs[0].model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_resume_continues_from_the_checkpoint(small_pendulum, tmp_path):
    torch.manual_seed(4)
    model = build_model("node", small_pendulum, hidden=16)
    fit(model, small_pendulum, TrainConfig(warm_start=False, steps=10, batch_size=8, window=4, val_every=5), out_dir=tmp_path)
    torch.manual_seed(4)
    again = build_model("node", small_pendulum, hidden=16)
    result = fit(again, small_pendulum, TrainConfig(warm_start=False, steps=20, batch_size=8, window=4, val_every=5), out_dir=tmp_path,
                 resume=True)
    assert result.steps == 20 and [h["step"] for h in result.history] == [5, 10, 15, 20]
    with pytest.raises(PhysodeError, match="another model"):
        fit(build_model("anode", small_pendulum), small_pendulum, TrainConfig(warm_start=False, steps=30), out_dir=tmp_path, resume=True)


@pytest.mark.parametrize("name", ["anode", "resnet", "hnn"])
def test_every_model_trains_briefly(name, small_pendulum):
    torch.manual_seed(5)
    model = build_model(name, small_pendulum, hidden=16)
    result = fit(model, small_pendulum, TrainConfig(warm_start=False, steps=15, batch_size=8, window=4, val_every=5, lbfgs_steps=3))
    assert result.steps == 15 and 0 < result.best_val_error < 1.0


def test_solver_failures_roll_back_and_then_stop_with_a_clear_message(small_pendulum, tmp_path):
    model = build_model("node", small_pendulum, hidden=8)
    calls = {"n": 0}
    real_flow = model.flow

    def flaky(t, z, u):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SolverError("injected failure")
        return real_flow(t, z, u)

    model.flow = flaky
    result = fit(model, small_pendulum, TrainConfig(warm_start=False, steps=6, batch_size=4, window=3, val_every=3, lr=1e-3),
                 out_dir=tmp_path / "flaky")
    assert result.steps == 6  # one failure: rolled back, learning rate halved, went on
    events = [r for r in read_metrics(tmp_path / "flaky" / "metrics.jsonl") if "event" in r]
    assert events == [{"step": 0, "event": "rollback", "cause": "injected failure", "lr": 5e-4}]
    assert [h["step"] for h in result.history] == [3, 6]  # the result's history holds the validations only

    def broken(t, z, u):
        raise SolverError("step size underflow")

    model.flow = broken
    with pytest.raises(PhysodeError, match=r"stopped at step 0 after 6 failures.*step size underflow"):
        fit(model, small_pendulum, TrainConfig(warm_start=False, steps=5, batch_size=4, window=3), out_dir=tmp_path / "broken")
    events = read_metrics(tmp_path / "broken" / "metrics.jsonl")
    assert [e["event"] for e in events] == ["rollback"] * 5 + ["stopped"] and "underflow" in events[-1]["cause"]


def test_early_stopping_and_irregular_grids():
    data = TrajectoryDataset.generate(physode.Pendulum(), 16, t_end=2.0, dt=0.1, irregular=True, noise_std=0.02, seed=6)
    torch.manual_seed(6)
    result = fit(build_model("node", data, hidden=8), data,
                 TrainConfig(warm_start=False, steps=2000, batch_size=8, window=4, val_every=2, patience=2, curriculum=0.0, lr=0.05))
    assert result.stopped == "early_stopping" and result.steps < 2000
    best = min(h["val_error"] for h in result.history)
    assert result.best_val_error == best and result.history[-1]["val_error"] >= best


def test_mismatched_models_and_datasets_are_refused(small_pendulum, spring_data, tmp_path):
    with pytest.raises(PhysodeError, match="state_dim=2"):
        fit(physode.NeuralODE(4), small_pendulum)
    with pytest.raises(PhysodeError, match="control_dim=0"):
        fit(physode.NeuralODE(2, control_dim=1), small_pendulum)
    only_val = small_pendulum.subset(small_pendulum.split != 0)
    with pytest.raises(PhysodeError, match="training split is empty"):
        fit(physode.NeuralODE(2), only_val)
    with pytest.raises(PhysodeError, match="window_start"):
        TrainConfig(window=2, window_start=5)
    with pytest.raises(PhysodeError, match="unknown model"):
        build_model("lstm", small_pendulum)
    trained = build_model("node", small_pendulum, hidden=8)
    physode.save_checkpoint(tmp_path / "m.pt", trained, system_spec=small_pendulum.system_spec)
    with pytest.raises(PhysodeError, match="trained on pendulum"):
        fit(load_model(tmp_path / "m.pt"), spring_data)


def test_cli_train_writes_a_run_and_refuses_bad_input(small_pendulum, tmp_path, capsys):
    data = small_pendulum.save(tmp_path / "data.npz")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "resnet", "--out", str(out), "--steps", "5", "--quiet"]) == 0
    assert "trained resnet on pendulum: 5 steps" in capsys.readouterr().out
    assert isinstance(load_model(out / "model.pt"), physode.ResNetStep)
    assert main(["train", "--data", str(tmp_path / "missing.npz"), "--out", str(out)]) == 2
    assert main(["train", "--data", str(data), "--model", "gru", "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "does not exist" in err[0] and "invalid choice" in err[1]


def test_without_a_val_split_training_says_it_validates_on_the_train_split(tmp_path, capsys):
    tiny = TrajectoryDataset.generate(physode.Pendulum(), 4, t_end=1.0, dt=0.1, seed=5)  # 4/0/0 by the default fractions
    assert [len(tiny.part(name)) for name in ("train",)] == [4] and int((tiny.split == 1).sum()) == 0
    with pytest.warns(physode.PhysodeWarning, match=r"no val trajectories \(train/val/test: 4/0/0\).*the train traj"):
        result = fit(build_model("node", tiny, hidden=8), tiny, TrainConfig(warm_start=False, steps=2, batch_size=4, window=3, val_every=1))
    assert result.steps == 2 and result.best_val_error > 0
    data = tiny.save(tmp_path / "tiny.npz")
    assert main(["train", "--data", str(data), "--model", "node", "--out", str(tmp_path / "run"), "--steps", "2", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("physode: warning: the dataset has no val trajectories")


def test_each_failure_halves_the_learning_rate_for_the_rest_of_the_run(small_pendulum, tmp_path):
    """The halving survives the schedule's next step (it was undone there), and every failure halves it again
    (rolled back to the last validation's rate, three failures in a row halved it once)."""
    model = build_model("node", small_pendulum, hidden=8)
    calls, real = {"n": 0}, model.rollout

    def flaky(*args, **kwargs):
        if torch.is_grad_enabled():  # a training rollout: the 6th, 7th and 8th fail (all at step 5)
            calls["n"] += 1
            if calls["n"] in (6, 7, 8):
                raise SolverError("injected failure")
        return real(*args, **kwargs)

    model.rollout = flaky
    lr = 1e-2
    fit(model, small_pendulum, TrainConfig(warm_start=False, steps=10, val_every=1, batch_size=4, window=4, lr=lr), out_dir=tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    cosine = [lr * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(11)]
    assert [r["lr"] for r in records if "event" in r] == pytest.approx([cosine[5] / 2, cosine[5] / 4, cosine[5] / 8])
    validations = [r for r in records if "event" not in r]
    assert [r["step"] for r in validations] == list(range(1, 11))
    # the rate a validation records is the one the next step uses: cosine, and an eighth of it from the failures on
    assert [r["lr"] for r in validations] == pytest.approx([cosine[s] * (1 if s <= 5 else 1 / 8) for s in range(1, 11)])


def test_a_time_limit_keeps_the_steps_it_made(small_pendulum, tmp_path):
    """Stopped by time_limit before its first validation, the run used to return (and save) the untrained model."""
    torch.manual_seed(6)
    model = build_model("node", small_pendulum, hidden=8)
    untrained = copy.deepcopy(model.state_dict())
    result = fit(model, small_pendulum, TrainConfig(warm_start=False, steps=10_000, val_every=5_000, batch_size=4, window=3, time_limit=0.5),
                 out_dir=tmp_path)
    assert result.stopped == "time_limit" and 0 < result.steps < 5_000 and math.isfinite(result.best_val_error)
    assert result.history[-1]["step"] == result.steps
    saved = load_model(tmp_path / "model.pt").state_dict()
    assert any(not torch.equal(saved[k], untrained[k]) for k in untrained if k.startswith("net."))


def test_resuming_an_early_stopped_run_does_not_train_on(small_pendulum, tmp_path):
    config = TrainConfig(warm_start=False, steps=400, val_every=2, patience=2, curriculum=0.0, batch_size=4, window=3, lr=0.05)
    torch.manual_seed(7)
    first = fit(build_model("node", small_pendulum, hidden=8), small_pendulum, config, out_dir=tmp_path)
    assert first.stopped == "early_stopping" and first.steps < 400
    (tmp_path / "model.pt").unlink()  # killed after the final checkpoint, before model.pt
    torch.manual_seed(7)
    again = fit(build_model("node", small_pendulum, hidden=8), small_pendulum, config, out_dir=tmp_path, resume=True)
    assert again.stopped == "early_stopping" and again.steps == first.steps
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key


@pytest.mark.parametrize("name", ["node", "anode", "hnn", "resnet"])
def test_every_trainable_parameter_gets_a_gradient(name, small_pendulum):
    """DistributedDataParallel stops at its second step on a trainable parameter that never gets one
    (the Hamiltonian's output bias, a constant offset of H, did so)."""
    model = build_model(name, small_pendulum, hidden=8)
    windows = small_pendulum.train
    _WindowLoss(model)(windows.x[:4, :5].float(), windows.times[:4, :5], None, torch.ones(4, 5, dtype=torch.bool), 1.0).backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


def test_normalisation_comes_from_the_training_horizon(tmp_path):
    """States after t_train are the extrapolation the model is judged on: they must not set its units."""
    data = TrajectoryDataset.generate(physode.Pendulum(damping=0.5), 12, t_end=4.0, dt=0.1, seed=8, t_train=1.0)
    model = build_model("node", data, hidden=8)
    fit(model, data, TrainConfig(warm_start=False, steps=1, batch_size=4, window=3))
    seen = data.train.x[data.train.train_time_mask]
    torch.testing.assert_close(model.x_scale.double(), seen.std(0), rtol=1e-6, atol=0)
    torch.testing.assert_close(model.x_mean.double(), seen.mean(0), rtol=1e-6, atol=1e-7)


def test_a_fresh_run_in_an_old_folder_is_refused_and_overwrite_leaves_nothing_of_the_old_run(small_pendulum, tmp_path):
    """A fresh run deleted a finished run's model.pt before training; with overwrite, the old model.pt must not
    outlive a new run that fails and pass for its result."""
    fit(build_model("node", small_pendulum, hidden=8), small_pendulum, TrainConfig(warm_start=False, steps=2, batch_size=4, window=3),
        out_dir=tmp_path)
    files = {name: (tmp_path / name).read_bytes() for name in ("model.pt", "checkpoint.pt", "metrics.jsonl")}
    model = build_model("node", small_pendulum, hidden=8)
    with pytest.raises(PhysodeError, match="already holds a run.*overwrite"):
        fit(model, small_pendulum, TrainConfig(warm_start=False, steps=5, batch_size=4, window=3), out_dir=tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in files} == files  # nothing lost

    def broken(t, z, u):
        raise SolverError("step size underflow")

    model.flow = broken
    with pytest.raises(PhysodeError, match="failures in a row"):
        fit(model, small_pendulum, TrainConfig(warm_start=False, steps=5, batch_size=4, window=3), out_dir=tmp_path, overwrite=True)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "checkpoint.pt").exists()


def test_resuming_or_reusing_a_run_on_other_data_is_refused(small_pendulum, tmp_path):
    """Only the system was compared: a resume on other data kept the old normalisation and best error."""
    config = TrainConfig(warm_start=False, steps=4, batch_size=4, window=3, checkpoint_every=2)
    fit(build_model("node", small_pendulum, hidden=8), small_pendulum, config, out_dir=tmp_path)
    other = TrajectoryDataset.generate(physode.Pendulum(), len(small_pendulum), small_pendulum.meta["t_end"],
                                       small_pendulum.meta["dt"], seed=99)
    assert other.fingerprint() != small_pendulum.fingerprint()
    assert small_pendulum.fingerprint() == small_pendulum.subset(list(range(len(small_pendulum)))).fingerprint()
    with pytest.raises(PhysodeError, match="other data"):
        fit(build_model("node", other, hidden=8), other, TrainConfig(warm_start=False, steps=6, batch_size=4, window=3,
                                                                       checkpoint_every=2), out_dir=tmp_path, resume=True)
    assert load_model(tmp_path / "model.pt").training_info["data"] == small_pendulum.fingerprint()


@pytest.mark.parametrize("damage", ["no optimizer", "step as text", "generator garbage"])
def test_a_damaged_trainer_state_is_refused_on_resume(damage, small_pendulum, tmp_path):
    config = TrainConfig(warm_start=False, steps=4, batch_size=4, window=3, checkpoint_every=2)
    fit(build_model("node", small_pendulum, hidden=8), small_pendulum, config, out_dir=tmp_path)
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    trainer = payload["trainer"]
    if damage == "no optimizer":
        del trainer["optimizer"]
    elif damage == "step as text":
        trainer["step"] = "2"
    else:
        trainer["generator"] = torch.zeros(7, dtype=torch.uint8)
    torch.save(payload, tmp_path / "checkpoint.pt")
    with pytest.raises(physode.FileFormatError, match="checkpoint.pt holds a damaged trainer state"):
        fit(build_model("node", small_pendulum, hidden=8), small_pendulum, config.__class__(**{**vars(config), "steps": 6}),
            out_dir=tmp_path, resume=True)


def test_the_training_solver_steps_at_the_spacing_or_finer_where_the_motion_outruns_it():
    """RK4 at the spacing of a grid that resolves the pendulum's motion (0.1 against a time scale of about 0.3),
    finer on a grid that does not (0.5 irregular), and at the step asked for when one is."""
    from physode.train.run import STEPS_PER_TIME_SCALE, TrainingSolver

    dense = TrajectoryDataset.generate(physode.Pendulum(), 16, 6.0, 0.1, seed=0)
    sparse = TrajectoryDataset.generate(physode.Pendulum(), 16, 6.0, 0.5, irregular=True, seed=0)
    model = build_model("node", dense, hidden=8)
    step = TrainingSolver(model, dense, TrainConfig()).settings["step_size"]
    assert step == pytest.approx(0.1, rel=1e-9)
    step = TrainingSolver(model, sparse, TrainConfig()).settings["step_size"]
    assert step == pytest.approx(sparse.train.time_scale() / STEPS_PER_TIME_SCALE, rel=1e-12)
    assert 0.08 < step < 0.5 * sparse.train.spacing()
    assert TrainingSolver(model, sparse, TrainConfig(train_step=0.3)).settings["step_size"] == 0.3


def test_a_window_spans_at_most_seven_time_scales_of_the_motion():
    """On the pendulum's 0.1 grid the default window (20 intervals, about 7 time scales) is kept; on a 0.5 grid
    20 intervals would span some 30 time scales: the window stops at 7 time scales' worth of observations on
    average. On an irregular grid that is the mean interval's worth (0.47 here), not the median's (0.28), which
    would make windows twice as long as asked for."""
    from physode.train.run import WINDOW_TIME_SCALES

    for dt, irregular in ((0.1, False), (0.5, True)):
        data = TrajectoryDataset.generate(physode.Pendulum(), 16, 10.0, dt, irregular=irregular, seed=0)
        train = data.train
        expected = min(20, round(WINDOW_TIME_SCALES * train.time_scale() / train.spacing("mean")))
        assert expected == (20 if dt == 0.1 else 4)
        if irregular:
            assert train.spacing("mean") > 1.5 * train.spacing()
        result = fit(build_model("node", data, hidden=8), data,
                     TrainConfig(steps=4, val_every=2, batch_size=4, curriculum=0.0, warm_start=False))
        assert [record["window"] for record in result.history] == [expected, expected]
