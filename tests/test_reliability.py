"""Crash-safe training: a `physode train` process killed with SIGKILL at a random moment, or stopped with
Ctrl-C, leaves a loadable run folder and, resumed, ends with the same weights as an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import physode
from physode import FileFormatError, TrajectoryDataset
from physode.checkpoint import load_checkpoint
from physode.train import read_metrics

STEPS, EVERY = 240, 40


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pendulum.npz"
    TrajectoryDataset.generate(physode.Pendulum(), 32, t_end=4.0, dt=0.1, seed=5).save(path)
    return path


def _command(data_file, out, *extra):
    return [sys.executable, "-m", "physode", "train", "--data", str(data_file), "--model", "node", "--out", str(out),
            "--steps", str(STEPS), "--checkpoint-every", str(EVERY), "--val-every", "20", "--seed", "3", "--quiet", "--no-warm-start",
            *extra]


def _train(data_file, out, *extra):
    done = subprocess.run(_command(data_file, out, *extra), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]


def _start_and_wait_for_a_checkpoint(data_file, out):
    process = subprocess.Popen(_command(data_file, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process


def _same_run(reference, resumed):
    a, b = torch.load(reference / "model.pt", weights_only=True), torch.load(resumed / "model.pt", weights_only=True)
    for name, tensor in a["model"]["state_dict"].items():
        assert torch.equal(tensor, b["model"]["state_dict"][name]), name  # bit for bit

    def records(folder):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(folder / "metrics.jsonl")]

    assert records(reference) == records(resumed) and len(records(reference)) == STEPS // 20
    assert a["training"]["steps"] == b["training"]["steps"] == STEPS


@pytest.fixture(scope="module")
def reference(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    _train(data_file, out)
    return out


def test_a_run_killed_at_a_random_moment_resumes_to_the_same_weights(data_file, reference, tmp_path):
    out = tmp_path / "killed"
    process = _start_and_wait_for_a_checkpoint(data_file, out)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 1.5))  # somewhere in the next checkpoints' span
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # what the killed run left is loadable: the last complete checkpoint, and the metrics up to it
    trainer = load_checkpoint(out / "checkpoint.pt")["trainer"]
    assert trainer["step"] % EVERY == 0 and 0 < trainer["step"] < STEPS
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")][: trainer["step"] // 20] == list(
        range(20, trainer["step"] + 1, 20))
    assert not (out / "model.pt").exists()
    _train(data_file, out, "--resume")
    _same_run(reference, out)


def test_ctrl_c_checkpoints_says_how_to_resume_and_resumes_to_the_same_weights(data_file, reference, tmp_path):
    out = tmp_path / "interrupted"
    process = _start_and_wait_for_a_checkpoint(data_file, out)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted at step" in stderr and "--resume" in stderr and len(stderr.strip().splitlines()) == 1
    step = load_checkpoint(out / "checkpoint.pt")["trainer"]["step"]
    assert 0 < step < STEPS and not (out / "model.pt").exists()
    _train(data_file, out, "--resume")
    _same_run(reference, out)


def test_resuming_with_other_settings_is_refused(data_file, reference, tmp_path, capsys):
    from physode.cli import main

    assert main(["train", "--data", str(data_file), "--model", "node", "--out", str(reference), "--no-warm-start", "--steps", str(STEPS),
                 "--seed", "4", "--checkpoint-every", str(EVERY), "--val-every", "10", "--resume", "--quiet"]) == 2
    assert "other settings (seed, val_every)" in capsys.readouterr().err


def test_metrics_with_a_cut_last_line_still_read(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 20, "loss": 1.0}) + "\n" + '{"step": 40, "lo')  # killed mid-write
    assert read_metrics(path) == [{"step": 20, "loss": 1.0}]
    path.write_text('{"step": 20, "lo\n' + json.dumps({"step": 40}) + "\n")
    with pytest.raises(FileFormatError, match="line 1"):
        read_metrics(path)
