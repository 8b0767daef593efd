"""`physode compare` end to end at a tiny size, stage reuse, `physode plot`, and bad input."""

import json
import shutil

import numpy as np
import pytest

from physode import TrajectoryDataset
from physode.cli import main
from physode.models.sindy import has_pysindy

FIELDS = {"parameters", "median_error", "mean_error", "p90_error", "nmse", "valid_time", "one_step_error", "k_step_error", "field_error_test",
          "field_error_grid", "energy_drift", "momentum_drift", "nfe", "rollout_seconds", "training_seconds"}


@pytest.mark.parametrize("system, figure", [("pendulum", "vector_field_node.png"), ("nbody", "orbits_node.png")])
def test_compare_runs_end_to_end_and_reuses_its_stages(system, figure, tmp_path, capsys):
    out = tmp_path / system
    assert main(["compare", system, "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    particles = {"interaction"} if system == "nbody" else set()  # the interaction model only where bodies are
    # the sparse baseline where its extra is installed and the data determine its library: the smoke nbody
    # data give fewer derivative samples than its 12-state library has terms, so the row is left out, saying why
    sparse = {"sindy"} if has_pysindy() and system == "pendulum" else set()
    assert set(report["rows"]) == {"true system", "node", "anode", "resnet", "hnn"} | particles | sparse
    if has_pysindy() and system == "nbody":
        assert "leaving out sindy: the sindy library has" in capsys.readouterr().out
        assert not (out / "sindy").exists()
    for name, row in report["rows"].items():
        assert set(row) == FIELDS | ({"equations"} if name == "sindy" else set()), name
    for name in ("error_vs_horizon.png", "phase_portraits.png", "energy.png", figure, "training_hnn.png"):
        assert (out / "figures" / name).stat().st_size > 1000, name
    before = (out / "node" / "model.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["compare", system, "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "reusing" in printed and (out / "node" / "model.pt").stat().st_mtime_ns == before
    (out / "figures" / "energy.png").unlink()
    assert main(["plot", str(out)]) == 0 and (out / "figures" / "energy.png").exists()


def test_compare_refuses_bad_input(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["compare", "spring_mass", "--preset", "smoke", "--models", "resnet", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", "pendulum", "--preset", "smoke", "--out", str(run), "--quiet"]) == 2
    assert main(["compare", "spring_mass", "--preset", "smoke", "--seed", "1", "--out", str(run), "--quiet"]) == 2
    assert main(["compare", "spring_mass", "--preset", "quick", "--out", str(run), "--quiet"]) == 2
    assert main(["compare", "pendulum", "--models", "node,lstm", "--out", str(tmp_path / "x")]) == 2
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["compare", "pendulum", "--preset", "smoke", "--out", str(blocker / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 6 and "not of pendulum" in err[0] and "with seed 0, not the smoke preset's" in err[1]
    assert "not the quick preset's 64" in err[2] and "'lstm'" in err[3] and "not a run folder" in err[4]
    assert "cannot create the run folder" in err[5] and blocker.read_text() == ""


def test_compare_refuses_horizons_beyond_the_data_before_training(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["compare", "pendulum", "--preset", "smoke", "--models", "resnet", "--out", str(run), "--quiet"]
    assert main(args + ["--reference", "data", "--horizons", "1", "4"]) == 2
    assert "beyond the data" in capsys.readouterr().err and not (run / "resnet").exists()
    assert main(args + ["--reference", "data"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["meta"]["reference"] == "data" and report["meta"]["horizons"] == [1.0, 2.0]
    before = (run / "report.json").read_bytes()
    assert main(args + ["--reference", "data", "--horizons", "3"]) == 2
    assert (run / "report.json").read_bytes() == before  # nothing already written is touched
    assert main(["plot", str(run)]) == 0  # the redraw keeps the run's reference and horizons
    assert json.loads((run / "report.json").read_text())["meta"]["reference"] == "data"


def test_a_model_trained_on_other_data_is_not_reused_and_figures_follow_the_models(tmp_path, capsys):
    """The job reused model.pt because the file existed, whatever data it was trained on; a rerun with fewer
    models kept the dropped models' figures, and `physode plot` scored every model.pt of the folder."""
    run = tmp_path / "run"
    args = ["compare", "pendulum", "--preset", "smoke", "--out", str(run), "--quiet"]
    assert main([*args, "--models", "resnet,node"]) == 0
    assert (run / "figures" / "vector_field_node.png").exists()
    assert main([*args, "--models", "resnet"]) == 0
    assert not (run / "figures" / "vector_field_node.png").exists()
    assert (run / "figures" / "vector_field_resnet.png").exists()
    assert set(json.loads((run / "report.json").read_text())["rows"]) == {"true system", "resnet"}
    assert main(["plot", str(run)]) == 0
    assert set(json.loads((run / "report.json").read_text())["rows"]) == {"true system", "resnet"}
    shutil.rmtree(run / "resnet")  # the report's models are gone: plot falls back to the folder's (node)
    assert main(["plot", str(run)]) == 0
    assert set(json.loads((run / "report.json").read_text())["rows"]) == {"true system", "node"}
    assert main([*args, "--models", "resnet"]) == 0  # trains resnet afresh
    (run / "data.npz").unlink()  # the data is simulated again, with another seed: the old models do not fit it
    capsys.readouterr()
    before = (run / "resnet" / "model.pt").read_bytes()
    assert main([*args, "--models", "resnet", "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained on other data" in err[0] and (run / "resnet" / "model.pt").read_bytes() == before


def test_evaluate_scores_models_trained_elsewhere_on_held_out_data(tmp_path, capsys):
    """A model from `physode train` could not be scored from the command line (there was no `physode evaluate`)."""
    train_data, held_out = tmp_path / "train.npz", tmp_path / "held_out.npz"
    for path, seed in ((train_data, "0"), (held_out, "5")):
        assert main(["simulate", "pendulum", "--n", "12", "--t-end", "2", "--seed", seed, "-o", str(path), "--quiet"]) == 0
    for model in ("node", "resnet"):
        assert main(["train", "--data", str(train_data), "--model", model, "--out", str(tmp_path / "runs" / model),
                     "--steps", "4", "--batch-size", "4", "--val-every", "2", "--quiet"]) == 0
    out = tmp_path / "scores"
    assert main(["evaluate", str(tmp_path / "runs" / "node"), str(tmp_path / "runs" / "resnet" / "model.pt"),
                 "--data", str(held_out), "--out", str(out), "--horizons", "1", "2", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["rows"]) == {"true system", "node", "resnet"} and report["meta"]["horizons"] == [1.0, 2.0]
    for name in ("error_vs_horizon.png", "vector_field_node.png", "training_resnet.png"):
        assert (out / "figures" / name).stat().st_size > 1000, name
    test_only = TrajectoryDataset.load(held_out)  # held-out data may hold test trajectories only
    TrajectoryDataset(test_only.t, test_only.x, test_only.system_spec, split=np.full(len(test_only), 2)).save(held_out)
    assert main(["evaluate", str(tmp_path / "runs" / "node"), "--data", str(held_out), "--out", str(out), "--quiet"]) == 0
    assert (out / "figures" / "vector_field_node.png").exists()  # its box came from the (missing) train split
    capsys.readouterr()
    clash = tmp_path / "other" / "node"
    clash.mkdir(parents=True)
    (clash / "model.pt").write_bytes((tmp_path / "runs" / "node" / "model.pt").read_bytes())
    for args, words in ((["evaluate", str(tmp_path / "runs" / "node"), str(clash)], "both be named 'node'"),
                        (["evaluate", str(tmp_path / "nowhere.pt")], "does not exist")):
        assert main([*args, "--data", str(held_out), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "bad").exists()
