"""Devices: every stage takes ``device`` and keeps its tensors there. The CUDA cases run where torch sees a
GPU (experiments/gpu_check.sh runs this file on one) and are skipped elsewhere; the CPU cases and the
errors run everywhere."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import physode
import physode.envs  # noqa: F401  (registers the envs)
from physode import PhysodeError, TrajectoryDataset
from physode.cli import main
from physode.devices import resolve_device

GPU = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not GPU, reason="torch sees no GPU"))]


def test_names_resolve_and_bad_ones_are_refused():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    assert resolve_device("auto") == torch.device("cuda" if GPU else "cpu", 0 if GPU else None)
    for bad in ("gpu", "cuda:x", "", 3, None):
        with pytest.raises(PhysodeError, match="device must be one of auto, cpu, cuda, cuda:N"):
            resolve_device(bad)
    with pytest.raises(PhysodeError, match="physode runs on 'cpu' or 'cuda'"):
        resolve_device("meta")
    if GPU:
        with pytest.raises(PhysodeError, match="torch sees"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(PhysodeError, match="torch sees none .* use device='cpu'"):
            resolve_device("cuda:0")


@pytest.mark.skipif(GPU, reason="checks the error for a GPU that is not there")
def test_the_cli_refuses_a_missing_gpu_in_one_line(tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert main(["simulate", "pendulum", "--n", "4", "--device", "cuda", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "device='cpu'" in err and not out.exists()
    assert main(["simulate", "pendulum", "--n", "4", "--device", "tpu", "-o", str(out), "--quiet"]) == 2


@pytest.fixture(scope="module")
def data():
    return TrajectoryDataset.generate(physode.Pendulum(), 24, t_end=2.0, dt=0.1, seed=2, device="cpu")


@pytest.mark.parametrize("device", DEVICES)
def test_simulate_in_float64_on_the_device_matches_the_cpu(device):
    system = physode.NBody(n_bodies=4, softening=0.1)
    x0 = system.sample_initial_states(8, seed=1)
    t = torch.linspace(0, 2, 11, dtype=torch.float64)
    on_device = physode.simulate(system, x0, t, device=device)
    assert on_device.device.type == device and on_device.dtype == torch.float64
    reference = physode.simulate(system, x0, t, device="cpu")
    torch.testing.assert_close(on_device.cpu(), reference, rtol=1e-10, atol=1e-10)
    data = TrajectoryDataset.generate(physode.Pendulum(), 4, t_end=1.0, dt=0.1, seed=2, device=device)
    assert data.x.device.type == "cpu"  # datasets live on the host


@pytest.mark.parametrize("device", DEVICES)
def test_fit_trains_on_the_device_and_the_checkpoint_loads_anywhere(device, data, tmp_path):
    results = {}
    for where in dict.fromkeys(("cpu", device)):
        torch.manual_seed(0)
        model = physode.build_model("node", data, hidden=16)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        results[where] = physode.fit(model, data, physode.TrainConfig(steps=20, val_every=10, batch_size=16),
                                     out_dir=tmp_path / where, device=where)
        assert all(p.device.type == where for p in model.parameters())
        assert (model.state_dict()["net.0.weight"].cpu() - start["net.0.weight"]).abs().max() > 1e-3  # it trained
    assert results[device].best_val_error == pytest.approx(results["cpu"].best_val_error, rel=1e-3)
    for target in ("cpu", device):
        loaded = physode.load_model(tmp_path / device / "model.pt", map_location=target)
        assert all(p.device.type == target for p in loaded.parameters())
        for name, tensor in loaded.state_dict().items():
            torch.testing.assert_close(tensor.cpu(), results[device].model.state_dict()[name].cpu())


@pytest.mark.parametrize("device", DEVICES)
def test_compare_on_the_device_scores_as_on_the_cpu(device, data):
    torch.manual_seed(0)
    model = physode.build_model("node", data, hidden=16)
    scores = {}
    for where in ("cpu", device):
        report = physode.compare({"node": model}, data, device=where)
        assert report.trajectories["node"].device.type == "cpu"
        scores[where] = report.rows["node"]["median_error"]["1.0"]
    assert scores[device] == pytest.approx(scores["cpu"], rel=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_vector_envs_on_the_device_step_like_on_the_cpu(device):
    runs = {}
    for where in ("cpu", device):
        envs = gym.make_vec("physode/NBody-v0", num_envs=8, vectorization_mode="vector_entry_point", device=where)
        obs, _ = envs.reset(seed=3)
        envs.action_space.seed(3)
        rewards = []
        for _ in range(5):
            obs, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
            assert isinstance(obs, np.ndarray) and isinstance(reward, np.ndarray)
            rewards.append(reward)
        assert envs.unwrapped._state.device.type == where
        runs[where] = (obs, np.array(rewards))
    np.testing.assert_allclose(runs[device][0], runs["cpu"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runs[device][1], runs["cpu"][1], rtol=1e-8, atol=1e-10)
