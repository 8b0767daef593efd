"""The experiment scripts run in --quick mode and write their tables (and figure) where they are told.

Marked slow (``pytest -m slow``): together they take minutes, and the scripts' full runs are the real checks.
"""

import json

import pytest

from experiment import run

pytestmark = pytest.mark.slow


def test_bench_simulate_quick(tmp_path):
    out = run("bench_simulate.py", "--n", "32", "--quick", "--results", str(tmp_path))
    assert "speed-up vs per-trajectory scipy loop at matched accuracy" in out
    raw = json.loads((tmp_path / "bench_simulate.json").read_text())
    assert raw["n_trajectories"] == 32 and raw["physode_defaults"]["max_abs_error"] < 1e-9
    # every level is reached by physode and the loop within the (one-per-decade) sweep, from 1e-8 to 1e-11
    assert [row["level"] for row in raw["levels"]] == [1e-8, 1e-9, 1e-10, 1e-11]
    for row in raw["levels"]:  # the loop is timed at its loosest tolerance that delivers the level
        looser = [float(tol) for tol, run in raw["loop"].items() if float(tol) > row["loop"][0]]
        assert all(raw["loop"][f"{tol:.0e}"]["max_abs_error"] > row["level"] for tol in looser)


def test_ground_truth_quick(tmp_path):
    out = run("ground_truth.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    table = (tmp_path / "ground_truth.md").read_text()
    assert "closed form" in table and "yoshida4" in out
    assert (tmp_path / "symplectic_energy.png").read_bytes()[:4] == b"\x89PNG"
    errors = [float(line.split("|")[3]) for line in table.splitlines() if "closed form" in line]
    assert len(errors) == 3 and max(errors) < 1e-8


def test_bench_train_quick(tmp_path):
    out = run("bench_train.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    raw = json.loads((tmp_path / "bench_train.json").read_text())
    assert "| clean | defaults |" in out and (tmp_path / "bench_train.png").exists()
    runs = raw["runs"]
    # on the sparse grid the defaults skip the warm start: the old trainer's run would be the same one
    assert raw["warm_start_skipped"] == ["sparse (21 irregular times)"] and "sparse (21 irregular times) | defaults" in runs
    assert len(runs) == 5 and all(r["steps"] == 100 for r in runs.values())
    # equal step budgets (deterministic): the defaults learn a better field than the plain loop, and on clean and
    # noisy data a better one than the old trainer (the warm start's doing)
    assert runs["clean | defaults"]["field_error"] < 0.75 * raw["baseline"]["field_error"]
    for case in ("clean", "noisy (1%)"):
        assert runs[f"{case} | defaults"]["field_error"] < 0.5 * runs[f"{case} | old trainer (warm start off)"]["field_error"]


def test_compare_all_quick(tmp_path):
    run("compare_all.py", "--systems", "spring_mass", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path),
        "--figures", str(tmp_path))
    assert "| node |" in (tmp_path / "compare_spring_mass_smoke.md").read_text()
    for figure in ("vector_field_node", "phase_portraits", "error_vs_horizon"):
        assert (tmp_path / f"spring_mass_{figure}.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_envs_quick(tmp_path):
    out = run("bench_envs.py", "--results", str(tmp_path))
    raw = json.loads((tmp_path / "bench_envs_quick.json").read_text())
    rows, parts = raw["rows"], raw["learned_step_parts_us"]
    assert "Pendulum-v1" in out and len(rows) == 5 and all(r["steps_per_s"] > 0 for r in rows)
    assert len(parts) == 8 and all(us > 0 for us in parts.values()) and "its parts timed alone" in out


def test_gym_pendulum_quick(tmp_path):
    out = run("gym_pendulum.py", "--results", str(tmp_path))
    raw = json.loads((tmp_path / "gym_pendulum_quick.json").read_text())
    assert "Pendulum-v1" in out and raw["one-step, NeuralODE"]["n"] == 400 and raw["training"]["steps"] == 30
    assert 0 < raw["one-step, NeuralODE"]["median"] < 1


def test_paper_irregular_quick(tmp_path):
    out = run("paper_irregular.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    rows = json.loads((tmp_path / "paper_irregular_quick.json").read_text())["rows"]
    assert "irregular, 20 per trajectory" in out and len(rows) == 4
    assert {(r["model"], r["observations"]) for r in rows} == {("node", 101), ("resnet", 101), ("node", 20), ("resnet", 20)}
    assert all(r["steps"] == 20 and r["error_2t_train"] > 0 for r in rows)
    assert (tmp_path / "paper_irregular_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_soak_quick(tmp_path):
    out = run("soak.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    raw = json.loads((tmp_path / "soak_quick.json").read_text())
    assert "RSS after warm-up" in out and len(raw["rss_mib"]) == 12
    assert raw["rss_mib"][-1] - raw["rss_mib"][raw["warmup"] - 1] < 20  # no runaway growth, even in 12 cycles


def test_bench_scale_quick(tmp_path):
    out = run("bench_scale.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    raw = json.loads((tmp_path / "bench_scale_quick.json").read_text())
    assert [r["bodies"] for r in raw["simulation"] if r["device"] == "cpu"] == [3, 32]
    assert all(r["body_steps_per_s"] > 0 and r["steps"] >= 2 for r in raw["simulation"])
    assert [(r["processes"], r["threads"], r["batch"]) for r in raw["training"] if r["device"] == "cpu"] == [
        (1, 2, 128), (1, 1, 128), (2, 1, 128), (2, 1, 256)]
    assert all(r["steps"] == 20 and r["steps_per_s"] > 0 for r in raw["training"])
    assert raw["efficiency"] > 0 and raw["weak_efficiency"] > 0 and "scaling efficiency" in out
    assert (tmp_path / "bench_scale_quick.png").exists()


def test_nbody_bodies_quick(tmp_path):
    out = run("nbody_bodies.py", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path))
    assert "| interaction |" in (tmp_path / "compare_nbody2_smoke.md").read_text()
    raw = json.loads((tmp_path / "nbody_bodies_smoke.json").read_text())
    assert set(raw) - {"provenance"} == {"2", "3", "4", "5"} and "| 5 | 8 |" in out  # 8 fresh test trajectories
    for scores in (raw[n] for n in ("2", "3", "4", "5")):  # a pair model of one smoke training, on every n
        assert 0 < scores["field_error_test"] < 1 and scores["valid_time"] > 0


def test_bench_uncertainty_quick(tmp_path):
    out = run("bench_uncertainty.py", "--quick", "--results", str(tmp_path), "--figures", str(tmp_path))
    raw = json.loads((tmp_path / "bench_uncertainty_quick.json").read_text())
    assert set(raw["runs"]) == {f"{case} | K={k}" for case in ("pendulum", "recorded (Van der Pol, no system)")
                                for k in (1, 3)}
    assert raw["runs"]["pendulum | K=1"]["uncertainty"] is None  # one model: no spread
    for case in ("pendulum", "recorded (Van der Pol, no system)"):
        u = raw["runs"][f"{case} | K=3"]["uncertainty"]
        assert u["members"] == 3 and all(0 <= u["coverage"][h] <= 1 for h in ("1.0", "2.0", "4.0"))
    assert raw["runs"]["recorded (Van der Pol, no system) | K=3"]["field_error"] is None  # no true field to score
    assert "| pendulum | 3 |" in out and (tmp_path / "bench_uncertainty_quick.png").exists()
