"""experiments/paper_adjoint_memory.py in --quick mode: direct backprop's memory grows with the steps, the adjoint's does not."""

import json

from experiment import run


def test_adjoint_memory_quick(tmp_path):
    out = run("paper_adjoint_memory.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    raw = json.loads((tmp_path / "paper_adjoint_memory_quick.json").read_text())
    assert "| RK4 steps |" in out and (tmp_path / "paper_adjoint_memory_quick.md").exists()
    assert (tmp_path / "paper_adjoint_memory_quick.png").read_bytes()[:4] == b"\x89PNG"
    mem = {(p["method"], p["steps"]): p["memory_mib"] for p in raw["points"]}
    assert sorted(mem) == sorted((m, n) for m in ("direct", "adjoint") for n in (10, 100, 1000))
    for p in raw["points"]:  # every point really took its RK4 steps (4 evaluations each), and the adjoint solved back
        assert p["nfe_forward"] == 4 * p["steps"]
        assert p["nfe_backward"] == (4 * p["steps"] if p["method"] == "adjoint" else 0)
    # direct backprop keeps every step's activations: 1000 steps need far more than 10 (about 100 MiB here)
    direct_growth = mem[("direct", 1000)] - mem[("direct", 10)]
    assert mem[("direct", 1000)] > 5 * max(mem[("direct", 10)], 1.0) and direct_growth > 20
    # the adjoint's peak stays small: sub-MiB values sit at the resolution of peak RSS, so compare growth, not ratios
    assert mem[("adjoint", 1000)] - mem[("adjoint", 10)] < 0.05 * direct_growth
    assert mem[("adjoint", 1000)] < mem[("direct", 1000)] / 20
    # both compute the same gradient (float64, fourth-order agreement)
    check = raw["gradient_check"]
    assert check["passed"] and check["relative_difference"][-1] < 1e-6 and 3.5 <= check["fitted_order"] <= 4.5
    grads = {(p["method"], p["steps"]): p["grad_norm"] for p in raw["points"]}
    for n in (10, 100, 1000):  # the float32 runs of the two methods agree too
        assert abs(grads[("adjoint", n)] - grads[("direct", n)]) <= 1e-4 * grads[("direct", n)]
