"""The `physode` command line: a thin layer over the API, one stderr line and exit code 2 on bad input."""

import subprocess
import sys

import pytest
import torch

from physode import Pendulum, TrajectoryDataset
from physode.cli import main


def test_simulate_writes_the_same_dataset_as_the_api(tmp_path, capsys):
    out = tmp_path / "data" / "pendulum.npz"
    code = main(["simulate", "pendulum", "--n", "12", "--t-end", "2", "--dt", "0.1", "--noise", "0.01",
                 "--seed", "5", "--param", "length=2.0", "-o", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: pendulum: 12 trajectories x 21 times x 2 states")
    data = TrajectoryDataset.load(out)
    api = TrajectoryDataset.generate(Pendulum(length=2.0), 12, 2.0, 0.1, noise_std=0.01, seed=5)
    assert torch.equal(data.x, api.x) and torch.equal(data.split, api.split) and data.system == api.system


def test_simulate_irregular_controls_and_symplectic(tmp_path):
    out = tmp_path / "nbody.npz"
    assert main(["simulate", "nbody", "--n", "3", "--t-end", "1", "--dt", "0.1", "--irregular",
                 "--controls", "random", "--method", "yoshida4", "--step-size", "0.01", "-o", str(out), "--quiet"]) == 0
    data = TrajectoryDataset.load(out)
    assert data.irregular and data.u.shape == (3, 10, 6) and data.meta["method"] == "yoshida4"


@pytest.mark.parametrize("args, words", [
    (["simulate", "rocket", "-o", "x.npz"], "unknown system 'rocket'"),
    (["simulate", "pendulum", "--dt", "-0.1", "-o", "x.npz"], "dt must be"),
    (["simulate", "pendulum", "--dt", "0", "-o", "x.npz"], "dt must be"),
    (["simulate", "pendulum", "--n", "0", "-o", "x.npz"], "n_trajectories"),
    (["simulate", "pendulum", "--param", "lenght=2", "-o", "x.npz"], "unknown parameter"),
    (["simulate", "pendulum", "--param", "length=-1", "-o", "x.npz"], "length"),
    (["simulate", "pendulum", "--param", "length", "-o", "x.npz"], "NAME=VALUE"),
    (["simulate", "pendulum", "--method", "rk45", "-o", "x.npz"], "unknown method"),
    (["simulate", "pendulum", "--noise", "nan", "-o", "x.npz"], "noise_std"),
    (["simulate", "pendulum", "--n", "1000000000000", "-o", "x.npz"], "GiB"),
    (["simulate", "pendulum"], "required: -o/--out"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line_and_no_file(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("physode: error:") and words in err
    assert list(tmp_path.iterdir()) == []


def test_failure_leaves_an_existing_output_untouched(tmp_path, capsys):
    out = tmp_path / "data.npz"
    out.write_bytes(b"precious")
    assert main(["simulate", "pendulum", "--dt", "-1", "-o", str(out)]) == 2
    assert out.read_bytes() == b"precious"
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["simulate", "pendulum", "--n", "2", "--t-end", "1", "-o", str(blocker / "sub" / "x.npz"), "--quiet"]) == 2
    assert "cannot write the dataset" in capsys.readouterr().err


def test_console_script_and_module_entry_points(tmp_path):
    out = tmp_path / "d.npz"
    done = subprocess.run([sys.executable, "-m", "physode", "simulate", "spring_mass", "--n", "4", "--t-end", "1",
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "spring_mass: 4 trajectories" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "physode", "simulate", "pendulum", "--dt", "-1", "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_train_refuses_an_old_run_folder_and_resumes_only_on_the_same_data(tmp_path, capsys):
    data, other, run = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "run"
    for path, seed in ((data, "0"), (other, "7")):
        assert main(["simulate", "pendulum", "--n", "8", "--t-end", "1", "--seed", seed, "-o", str(path), "--quiet"]) == 0
    train = ["train", "--data", str(data), "--out", str(run), "--steps", "4", "--batch-size", "4",
             "--checkpoint-every", "2", "--val-every", "2", "--quiet"]
    assert main(train) == 0
    finished = {name: (run / name).read_bytes() for name in ("model.pt", "checkpoint.pt", "metrics.jsonl")}
    capsys.readouterr()
    assert main(train) == 2  # it deleted the finished run's files before training
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--overwrite" in err[0]
    assert {name: (run / name).read_bytes() for name in finished} == finished
    resume_other = ["train", "--data", str(other), *train[3:], "--resume"]
    assert main(resume_other) == 2  # it resumed on other data with the old normalisation and best error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other data" in err[0]
    assert main([*train, "--overwrite"]) == 0 and (run / "model.pt").read_bytes() != b""


def test_an_error_after_an_empty_split_prints_one_line(tmp_path, capsys):
    """A warning about the missing val split came before the error: two lines on stderr."""
    data = tmp_path / "tiny.npz"
    assert main(["simulate", "pendulum", "--n", "4", "--t-end", "1", "-o", str(data), "--quiet"]) == 0  # 4/0/0
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--batch-size", "1000000000000",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("physode: error:") and "batch_size" in err[0]
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "none"), "--resume", "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_resume_command_printed_after_ctrl_c_keeps_the_time_limit(tmp_path, capsys, monkeypatch):
    import physode.cli
    from physode.train import TrainResult

    data = tmp_path / "d.npz"
    assert main(["simulate", "pendulum", "--n", "8", "--t-end", "1", "-o", str(data), "--quiet"]) == 0
    monkeypatch.setattr(physode.cli, "fit", lambda model, *a, **k: TrainResult(model, 3, 1.0, 0.5, "interrupted", []))
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--time-limit", "600", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "--time-limit 600.0 " in err and "--quiet --resume`" in err
