"""experiments/paper_accuracy_cost.py in --quick mode: tighter tolerances cost more evaluations and cut the solver error."""

import pytest
import json
from itertools import pairwise

from experiment import run


@pytest.mark.slow
def test_accuracy_cost_quick(tmp_path):
    out = run("paper_accuracy_cost.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    raw = json.loads((tmp_path / "paper_accuracy_cost_quick.json").read_text())
    table = (tmp_path / "paper_accuracy_cost_quick.md").read_text()
    assert (tmp_path / "paper_accuracy_cost_quick.png").read_bytes()[:4] == b"\x89PNG"
    rows = raw["rows"]
    tols = [r["tol"] for r in rows]
    assert tols == sorted(tols, reverse=True) and len(tols) == 9  # 1e-1 (loosest) ... 1e-9 (tightest)
    for tol in tols:  # one table row per tolerance, printed and written
        assert f"| {tol:.0e} |" in table and f"| {tol:.0e} |" in out
    assert raw["training"]["best_val_error"] < 0.5  # a model that learned something, not the zero field it starts as
    nfe = [r["nfe"] for r in rows]
    final_nfe = [r["nfe_final_only"] for r in rows]
    # NFE does not fall as the tolerance tightens; at the floor (one step per output interval) a looser tolerance can
    # propose over-long steps that get rejected, so allow a few per cent there
    for loose, tight in pairwise(nfe):
        assert tight >= 0.95 * loose
    assert nfe[-1] > 2 * nfe[0]
    assert all(tight >= loose for loose, tight in pairwise(final_nfe)) and final_nfe[-1] > 10 * final_nfe[0]
    # the solver error (against the same model solved at 1e-12) shrinks as the tolerance tightens: never more than 2x
    # worse than at any looser tolerance (noise at the floor), at least 100x smaller at 1e-9 than at 1e-1, and the last
    # two steps of the sweep (1e-7 -> 1e-8 -> 1e-9, far from the floor) each cut it
    err = [r["solver_error"] for r in rows]
    for i, loose in enumerate(err):
        assert all(tight <= 2 * loose for tight in err[i + 1 :])
    assert err[-1] < err[0] / 100 and err[-1] < err[-2] < err[-3]
    assert raw["reference"]["error_vs_1e-11"] < 1e-3 * err[-1]  # the reference resolves even the smallest of them
    final_err = [r["final_solver_error_max"] for r in rows]
    assert final_err[-1] < 1e-5 < final_err[0]
