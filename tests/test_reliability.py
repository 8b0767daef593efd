"""Crash-safe training: a `physode train` process killed with SIGKILL at a random moment, stopped with
Ctrl-C or SIGTERM, or stopped by a full disk, leaves a loadable run folder and, resumed, ends with the same
weights as an uninterrupted run; a second run into the same folder is refused at once and changes nothing."""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import physode
from physode import FileFormatError, TrajectoryDataset
from physode.checkpoint import load_checkpoint
from physode.lock import LOCK_NAME
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


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _train(data_file, out, *extra):
    done = subprocess.run(_command(data_file, out, *extra), capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]


def _start_and_wait_for(data_file, out, ready):
    """A `physode train` process, once ``ready(process)`` (polled) is true."""
    process = subprocess.Popen(_command(data_file, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=ENV)
    deadline = time.monotonic() + 300
    while not ready(process):
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return process


def _start_and_wait_for_a_checkpoint(data_file, out):
    return _start_and_wait_for(data_file, out, lambda process: (out / "checkpoint.pt").exists())


def _hashes(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))}


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
    assert (out / LOCK_NAME).read_text().strip() == str(process.pid)  # its lock file stays; the lock died with it
    # what the killed run left is loadable: the last complete checkpoint, and the metrics up to it
    trainer = load_checkpoint(out / "checkpoint.pt")["trainer"]
    assert trainer["step"] % EVERY == 0 and 0 < trainer["step"] < STEPS
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")][: trainer["step"] // 20] == list(
        range(20, trainer["step"] + 1, 20))
    assert not (out / "model.pt").exists()
    _train(data_file, out, "--resume")  # takes the dead run's lock over
    _same_run(reference, out)
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_stop_signal_checkpoints_says_how_to_resume_and_resumes_to_the_same_weights(signum, code, word, data_file,
                                                                                      reference, tmp_path):
    """Ctrl-C, and SIGTERM (``kill``, a batch scheduler's or a container's stop) alike, at a random moment of training."""
    out = tmp_path / word
    process = _start_and_wait_for_a_checkpoint(data_file, out)
    time.sleep(random.Random(signum).uniform(0.0, 1.0))  # somewhere in the next checkpoints' span
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    assert f"{word} at step" in stderr and "--resume" in stderr and len(stderr.strip().splitlines()) == 1
    trainer = load_checkpoint(out / "checkpoint.pt")["trainer"]
    assert 0 < trainer["step"] < STEPS and trainer["stopped"] == word and not (out / "model.pt").exists()
    assert f"{word} at step {trainer['step']};" in stderr  # the checkpoint holds the step it stopped at
    _train(data_file, out, "--resume")
    _same_run(reference, out)


def test_a_second_run_into_the_same_folder_is_refused_at_once_and_the_first_runs_as_if_alone(data_file, reference,
                                                                                           tmp_path):
    out = tmp_path / "shared"
    first = _start_and_wait_for(data_file, out, lambda process: _holder(out) == str(process.pid))
    first.send_signal(signal.SIGSTOP)  # it holds the folder and changes nothing while the second one tries
    try:
        before = _hashes(out)
        start = time.monotonic()
        second = subprocess.run(_command(data_file, out), capture_output=True, text=True, timeout=120, env=ENV)
        seconds = time.monotonic() - start
        after = _hashes(out)
        start = time.monotonic()  # the interpreter's start and physode's (torch's) import, measured alike
        subprocess.run([sys.executable, "-c", "import physode.cli"], check=True, timeout=120, env=ENV)
        starting = time.monotonic() - start
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and seconds - starting < 1.0, (seconds, starting)  # refused at once
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "is in use by another physode process" in lines[0] and f"(pid {first.pid})" in lines[0]
    assert after == before
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    _same_run(reference, out)  # the same weights and metrics as a lone run
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())


def _holder(folder):
    try:
        return (folder / LOCK_NAME).read_text().strip()
    except OSError:
        return None


def _can_mount_a_private_tmpfs():
    """A mount namespace of our own (unprivileged through a user namespace) where a tmpfs can be mounted."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return done.returncode == 0


@pytest.mark.skipif(not _can_mount_a_private_tmpfs(), reason="needs `unshare -rm` and a tmpfs mount (user namespaces)")
def test_a_full_disk_stops_training_with_the_last_checkpoint_whole_and_it_resumes_to_the_same_weights(
        data_file, reference, tmp_path):
    """A real small filesystem: a tmpfs that holds one checkpoint (with the metrics and the lock file) but not the
    next one written beside it."""
    page = os.sysconf("SC_PAGE_SIZE")
    pages = -(-(reference / "checkpoint.pt").stat().st_size // page)  # the biggest checkpoint of the run
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    command = " ".join(f"'{a}'" for a in _command(data_file, disk / "run"))
    script = (f"mount -t tmpfs -o size={(pages + 3) * page} tmpfs '{disk}' || exit 99; {command}; code=$?; "
              f"cp -a '{disk}/run' '{kept}'; exit $code")  # the mount (and what is on it) ends with the namespace
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"physode: error: training stopped at step {2 * EVERY}: "
                                                   f"cannot write the checkpoint to '{disk / 'run' / 'checkpoint.pt'}' "
                                                   "(No space left on device)"), lines
    assert "--resume" in lines[0]
    assert sorted(p.name for p in kept.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]  # no temporary file, no lock
    assert load_checkpoint(kept / "checkpoint.pt")["trainer"]["step"] == EVERY  # the last one written, whole
    _train(data_file, kept, "--resume")
    _same_run(reference, kept)


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
