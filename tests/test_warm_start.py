"""The derivative-matching warm start as the trainer's first phase: faster to a better field, recorded, resumable
bit for bit, and refused on data too sparse for derivatives before anything is written."""

import json
import os
import signal
import threading

import pytest
import torch

import physode
from physode import PhysodeError, TrajectoryDataset
from physode.checkpoint import load_checkpoint
from physode.train import TrainConfig, build_model, fit
from runs import assert_same_run


@pytest.fixture(scope="module")
def pendulum():
    return TrajectoryDataset.generate(physode.Pendulum(), 48, 6.0, 0.1, seed=0)


def _field_error(model, data):
    states = data.test.x_clean.reshape(-1, data.state_dim)
    with torch.no_grad():
        truth = data.system.vector_field(0.0, states)
        return float((model.vector_field(0.0, states) - truth).norm() / truth.norm())


def test_the_warm_start_reaches_a_better_field_in_the_same_trajectory_steps_and_is_recorded(pendulum, tmp_path):
    errors = {}
    for warm in (False, True):
        torch.manual_seed(0)
        model = build_model("node", pendulum, hidden=32)
        result = fit(model, pendulum, TrainConfig(steps=60, val_every=20, warm_start=warm, warm_start_steps=2000),
                     out_dir=tmp_path / str(warm))
        errors[warm] = _field_error(model, pendulum)
    assert errors[True] < errors[False] / 10 and errors[True] < 5e-2  # 2,000 warm steps: seconds
    records = [json.loads(line) for line in (tmp_path / "True" / "metrics.jsonl").read_text().splitlines()]
    first = records[0]
    assert first["phase"] == "warm_start" and first["warm_start_steps"] == 2000 and first["samples"] > 1000
    assert result.best_val_error <= first["val_error"]  # trajectory matching keeps the warm start's weights or better
    assert [r["step"] for r in records[1:]] == [20, 40, 60]


def test_a_run_interrupted_in_its_warm_start_resumes_to_the_same_weights(pendulum, tmp_path):
    config = TrainConfig(steps=20, val_every=10, checkpoint_every=10, warm_start_steps=4000)
    torch.manual_seed(0)
    fit(build_model("node", pendulum, hidden=16), pendulum, config, out_dir=tmp_path / "reference")
    torch.manual_seed(0)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C early in the warm start
    timer.start()
    stopped = fit(build_model("node", pendulum, hidden=16), pendulum, config, out_dir=tmp_path / "run")
    timer.join()
    assert stopped.stopped == "interrupted"
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["trainer"]["phase"] == "warm_start"
    torch.manual_seed(1)  # the resumed run must not depend on the global generator
    fit(build_model("node", pendulum, hidden=16), pendulum, config, out_dir=tmp_path / "run", resume=True)
    assert_same_run(tmp_path / "reference", tmp_path / "run")


def test_after_the_warm_start_a_checkpoint_holds_its_result(pendulum, tmp_path):
    config = TrainConfig(steps=20, val_every=10, checkpoint_every=1000, warm_start_steps=500)
    torch.manual_seed(0)
    fit(build_model("node", pendulum, hidden=16), pendulum, config, out_dir=tmp_path)
    trainer = load_checkpoint(tmp_path / "checkpoint.pt")["trainer"]
    assert trainer["phase"] == "trajectories" and trainer["history"][0]["phase"] == "warm_start"


def test_data_too_sparse_for_derivatives_is_refused_before_anything_is_written(tmp_path):
    sparse = TrajectoryDataset.generate(physode.Pendulum(), 8, 0.2, 0.1, seed=0)  # 2 observations up to t_train
    model = build_model("node", sparse, hidden=8)
    with pytest.raises(PhysodeError, match=r"warm start cannot estimate derivatives.*--no-warm-start") as caught:
        fit(model, sparse, TrainConfig(steps=2, derivatives="stencil"), out_dir=tmp_path / "run")
    assert "\n" not in str(caught.value) and not (tmp_path / "run").exists()
    fit(model, sparse, TrainConfig(steps=2, warm_start=False, batch_size=4, window=1))  # the way round it works
    with pytest.raises(PhysodeError, match="derivatives"):
        TrainConfig(derivatives="fourier")
    with pytest.raises(PhysodeError, match="warm_start_share"):
        TrainConfig(warm_start_share=1.5)


def test_a_warm_start_worse_than_no_warm_start_is_undone():
    """20 random times per trajectory: too sparse for derivatives; a warm start asked for with a named estimate
    (not skipped as the automatic one is) must not leave a worse field."""
    sparse = TrajectoryDataset.generate(physode.Pendulum(), 24, 10.0, 10.0 / 19, irregular=True, seed=0, t_train=5.0)
    torch.manual_seed(0)
    model = build_model("node", sparse, hidden=32)
    result = fit(model, sparse, TrainConfig(steps=10, val_every=5, warm_start_steps=2000, train_step=0.1,
                                            derivatives="interpolate"))
    warm = result.history[0]
    assert warm["phase"] == "warm_start" and warm["kept"] is False
    assert result.history[1]["lr"] > TrainConfig().refine_lr  # trajectory matching at lr, as without a warm start


@pytest.mark.parametrize("dt, skipped", [(0.1, False), (0.5, True)])
def test_the_automatic_warm_start_is_skipped_on_a_grid_too_coarse_for_derivatives(dt, skipped, tmp_path):
    """The pendulum's time scale is about 0.3: a grid of 0.1 resolves it three times over, one of 0.5 not even once
    (there the derivative estimates are the error they fit); the skip is an event in metrics.jsonl."""
    data = TrajectoryDataset.generate(physode.Pendulum(), 16, 6.0, dt, irregular=True, seed=0)
    assert (physode.derivatives.coarse_grid(data.train) is not None) == skipped
    torch.manual_seed(0)
    result = fit(build_model("node", data, hidden=8), data, TrainConfig(steps=4, val_every=2, batch_size=4),
                 out_dir=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    if skipped:
        assert records[0]["event"] == "warm_start_skipped" and "too coarse for derivative estimates" in records[0]["cause"]
        assert all(r.get("phase") != "warm_start" for r in records)
        assert result.history[0]["lr"] > TrainConfig().refine_lr  # trajectory matching at lr, as without a warm start
    else:
        assert records[0]["phase"] == "warm_start" and not any("event" in r for r in records)
