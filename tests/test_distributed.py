"""Data-parallel training: real `torchrun` runs of `physode train` with 2 CPU processes (gloo) take the same
steps as one process with the same global batch and seed, shard the data, write from rank 0 only, and
resume after a SIGKILL to the same weights."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import physode
from physode import TrajectoryDataset
from physode.distributed import World
from physode.train import _WindowLoss, _Windows, build_model, read_metrics

STEPS, EVERY, VAL = 60, 20, 10
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pendulum.npz"
    TrajectoryDataset.generate(physode.Pendulum(), 32, t_end=4.0, dt=0.1, seed=5).save(path)
    return path


def _command(data_file, out, processes: int, *extra):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return [*(launcher if processes > 1 else [sys.executable]), "-m", "physode", "train", "--data", str(data_file),
            "--out", str(out), "--steps", str(STEPS), "--checkpoint-every", str(EVERY), "--val-every", str(VAL),
            "--seed", "3", "--device", "cpu", "--quiet", "--no-warm-start", *extra]


def _train(data_file, out, processes: int, *extra) -> str:
    done = subprocess.run(_command(data_file, out, processes, *extra), capture_output=True, text=True, timeout=600,
                          env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)["model"]["state_dict"]


def _assert_same_weights(a, b):
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def single(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    _train(data_file, out, 1)
    return out


def test_two_processes_train_the_same_weights_as_one(data_file, single, tmp_path):
    out = tmp_path / "ddp"
    stdout = _train(data_file, out, 2)
    assert stdout.count("trained node") == 1  # rank 0 reports, rank 1 is silent
    _assert_same_weights(_weights(single), _weights(out))
    # training moved the weights far more than the two runs differ
    torch.manual_seed(3)
    start = build_model("node", TrajectoryDataset.load(data_file)).state_dict()
    moved = max(float((_weights(out)[k] - start[k]).abs().max()) for k in start if k.startswith("net"))
    assert moved > 1e-2
    # one metrics line per validation (rank 0 only), with the same validation errors
    a, b = read_metrics(single / "metrics.jsonl"), read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(VAL, STEPS + 1, VAL))
    for ra, rb in zip(a, b, strict=True):
        assert rb["val_error"] == pytest.approx(ra["val_error"], rel=1e-5)
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)


def test_a_killed_data_parallel_run_resumes_to_the_same_weights(data_file, single, tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen(_command(data_file, out, 2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=ENV, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # torchrun and both workers
    process.wait(timeout=60)
    step = physode.checkpoint.load_checkpoint(out / "checkpoint.pt")["trainer"]["step"]
    assert step % EVERY == 0 and step < STEPS and not (out / "model.pt").exists()
    _train(data_file, out, 2, "--resume")
    _assert_same_weights(_weights(single), _weights(out))
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(VAL, STEPS + 1, VAL))


def test_each_rank_holds_its_shard_and_the_scaled_losses_give_the_global_gradient(data_file):
    """Without any process group: the windows of two ranks together are the one-process batch, and the
    sum of their scaled losses' gradients over 2 (DDP's average) is the one-process gradient."""
    dataset = TrajectoryDataset.load(data_file)
    torch.manual_seed(0)
    model = build_model("node", dataset, dtype="float64")
    train, cpu = dataset.train, torch.device("cpu")
    one = _Windows(train, torch.float64, 7, cpu, World())
    ranks = [_Windows(train, torch.float64, 7, cpu, World(rank, 2)) for rank in range(2)]
    assert torch.equal(ranks[0].x, train.x[0::2].double()) and torch.equal(ranks[1].x, train.x[1::2].double())

    def gradient(windows_list):
        model.zero_grad()
        for windows in windows_list:
            x, t, u, mask, scale = windows.sample(64, 6)
            _WindowLoss(model)(x, t, u, mask, scale).backward()
        return [p.grad.clone() / len(windows_list) for p in model.parameters()]

    x1, *_ = one.sample(64, 6)
    one.generator.manual_seed(7)
    parts = [w.sample(64, 6)[0] for w in ranks]
    for w in ranks:
        w.generator.manual_seed(7)
    assert sum(len(p) for p in parts) == 64 and all(len(p) for p in parts)
    together = torch.cat(parts)
    assert sorted(map(tuple, together[:, 0].tolist())) == sorted(map(tuple, x1[:, 0].tolist()))
    for a, b in zip(gradient([one]), gradient(ranks), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_other_commands_refuse_to_run_under_torchrun(monkeypatch, tmp_path, capsys):
    from physode.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "d.npz"
    assert main(["simulate", "pendulum", "--n", "4", "-o", str(out), "--quiet"]) == 2
    assert "only `physode train` runs under torchrun" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("value, code", [("abc", 2), ("0", 2), ("1", 0)])
def test_world_size_outside_torchrun(value, code, monkeypatch, tmp_path, capsys):
    """WORLD_SIZE=abc gave a ValueError traceback; WORLD_SIZE=1 tried to join a process group without RANK."""
    from physode.cli import main

    monkeypatch.setenv("WORLD_SIZE", value)
    out = tmp_path / "d.npz"
    with monkeypatch.context() as plain:
        plain.delenv("WORLD_SIZE")
        assert main(["simulate", "pendulum", "--n", "4", "--t-end", "1", "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(out), "--out", str(tmp_path / "r"), "--steps", "2", "--batch-size", "2",
                 "--quiet"]) == code
    err = capsys.readouterr().err
    assert ("WORLD_SIZE" in err and len(err.strip().splitlines()) == 1) if code else (tmp_path / "r" / "model.pt").exists()
