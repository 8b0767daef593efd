"""experiments/paper_adjoint_memory.py in --quick mode: direct backprop's memory grows with the steps, the adjoint's does not."""

import pytest
import json
import subprocess
import sys

from experiment import ROOT, run


@pytest.mark.slow
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
    # the adjoint's peak stays small and flat: by the allocator's counters (exact) not a byte more at 1000 steps than at 10
    assert raw["config"]["memory"].startswith("peak tensor memory")
    counted = {(p["method"], p["steps"]): p["tensor_peak_bytes"] for p in raw["points"]}
    assert counted[("adjoint", 1000)] == counted[("adjoint", 100)] == counted[("adjoint", 10)] > 0
    assert raw["targets"]["adjoint_flat"]["met"]
    # and by peak RSS, whose resolution is a few hundred KiB, it grows far less than direct backprop's
    rss = {(p["method"], p["steps"]): p["rss_increase_mib"] for p in raw["points"]}
    assert rss[("adjoint", 1000)] - rss[("adjoint", 10)] < 0.05 * (rss[("direct", 1000)] - rss[("direct", 10)])
    assert mem[("adjoint", 1000)] < mem[("direct", 1000)] / 20
    # both compute the same gradient (float64, fourth-order agreement)
    check = raw["gradient_check"]
    assert check["passed"] and check["relative_difference"][-1] < 1e-6 and 3.5 <= check["fitted_order"] <= 4.5
    grads = {(p["method"], p["steps"]): p["grad_norm"] for p in raw["points"]}
    for n in (10, 100, 1000):  # the float32 runs of the two methods agree too
        assert abs(grads[("adjoint", n)] - grads[("direct", n)]) <= 1e-4 * grads[("direct", n)]


def test_tensor_peak_bytes_counts_what_is_live_at_once():
    """The counter behind the memory column, on a known pattern: two 4 MB tensors live together, then one."""
    code = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from paper_adjoint_memory import tensor_peak_bytes
def step():
    a = torch.ones(1_000_000)   # 4,000,000 bytes
    b = a * 2                   # 4,000,000 more, both live
    del a
    c = b + 1                   # a freed first: still 8,000,000 at most
    return c.sum()
peak, events = tensor_peak_bytes(step)
keep = []
peak_kept, _ = tensor_peak_bytes(lambda: keep.append(torch.zeros(250_000, dtype=torch.float64)))
print(peak, events, peak_kept)
"""
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "experiments")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    peak, events, peak_kept = (int(v) for v in done.stdout.split()[-3:])
    assert 8_000_000 <= peak < 8_000_100 and events >= 6  # the sum's 4-byte result may add a few bytes
    assert peak_kept == 2_000_000
