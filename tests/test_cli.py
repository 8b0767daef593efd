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
    (["simulate", "rocket", "-o", "x.npz"], "invalid choice: 'rocket'"),
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
