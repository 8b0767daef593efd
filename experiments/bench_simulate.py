"""Speed benchmark: ``physode.simulate`` against scipy DOP853 on pendulum trajectories, at matched accuracy.

What it measures: wall time to integrate N pendulum trajectories (default 1024, from
``Pendulum().sample_initial_states(N, seed=0)``) over t in [0, 10] with 101 output times, by

* physode: ``physode.simulate(system, x0, t)`` with its defaults (batched dopri8, rtol = atol = 1e-14);
* (a) a per-trajectory loop of scipy ``solve_ivp(method="DOP853")``, what users write by hand;
* (b) one scipy DOP853 solve of the stacked, vectorised (2N,) system.

Errors are max abs errors over all trajectories, times and components against a tight reference:
per-trajectory scipy DOP853 with rtol = 2.5e-14 (scipy's floor is 100 eps), atol = 1e-15.

Matched accuracy: for (a) and (b) the scipy tolerance (rtol = atol) is the LOOSEST in
1e-8, 1e-9, ..., 1e-13 whose max abs error is <= physode's, so scipy is at least as accurate as physode
(for (a) the sweep runs on the first 64 trajectories; the full loop is then timed once at that tolerance).
Timings are the best of several repeats after one warm-up call (the slow loop (a): one run).
The speed-up ratio is time_other / time_physode.

    python experiments/bench_simulate.py            # 1024 trajectories
    python experiments/bench_simulate.py --quick    # 128 trajectories, fewer repeats (for tests)
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from scipy.integrate import solve_ivp

import physode
from _common import experiment_parser, write_outputs
from physode.simulate import DEFAULT_RTOL

G_OVER_L = 9.81 / 1.0
TOLERANCES = (1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13)
REFERENCE_RTOL, REFERENCE_ATOL = 2.5e-14, 1e-15


def rhs(t, y):
    """Pendulum vector field for one (2,) state or the stacked (2N,) state [theta_0, omega_0, theta_1, ...]."""
    theta, omega = y[0::2], y[1::2]
    out = np.empty_like(y)
    out[0::2], out[1::2] = omega, -G_OVER_L * np.sin(theta)
    return out


def scipy_loop(x0, t, tol, atol=None):
    """(a) one solve_ivp per trajectory; returns (N, T, 2)."""
    atol = tol if atol is None else atol
    sols = [solve_ivp(rhs, (t[0], t[-1]), x, method="DOP853", rtol=tol, atol=atol, t_eval=t) for x in x0]
    return np.stack([s.y.T for s in sols])


def scipy_stacked(x0, t, tol, evaluations=None):
    """(b) one solve_ivp over the stacked (2N,) state; returns (N, T, 2) and appends its nfev to ``evaluations``."""
    sol = solve_ivp(rhs, (t[0], t[-1]), x0.reshape(-1), method="DOP853", rtol=tol, atol=tol, t_eval=t)
    if evaluations is not None:
        evaluations.append(sol.nfev)
    return sol.y.T.reshape(len(t), -1, 2).transpose(1, 0, 2)


class Counting:
    """Wraps a system and counts its vector-field evaluations."""

    def __init__(self, system):
        self.system, self.evaluations = system, 0

    def __getattr__(self, name):
        return getattr(self.system, name)

    def vector_field(self, t, x, u=None):
        self.evaluations += 1
        return self.system.vector_field(t, x, u)


def best_time(fn, repeats):
    """Best wall time of ``repeats`` calls after one warm-up call; also returns the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def max_err(y, ref):
    return float(np.abs(y - ref).max())


def loosest_matching(solve, ref, target):
    """The loosest tolerance whose max abs error is <= target (the tightest one if none is)."""
    for tol in TOLERANCES:
        err = max_err(solve(tol), ref)
        print(f"  tol {tol:.0e}: max abs error {err:.2e}")
        if err <= target:
            return tol
    return TOLERANCES[-1]


def main(argv=None):
    parser = experiment_parser(__doc__, "128 trajectories and fewer repeats (for tests)")
    parser.add_argument("--n", type=int, default=None, help="number of trajectories (default 1024, 128 with --quick)")
    args = parser.parse_args(argv)
    n = args.n or (128 if args.quick else 1024)
    repeats = 1 if args.quick else 3
    n_sweep = min(n, 64)

    system = physode.Pendulum()
    x0_t = system.sample_initial_states(n, seed=0)
    t_t = torch.linspace(0, 10, 101, dtype=torch.float64)
    x0, t = x0_t.numpy(), t_t.numpy()
    env = f"torch threads: {torch.get_num_threads()}, os.cpu_count(): {os.cpu_count()}"
    print(f"{n} pendulum trajectories, t in [0, 10], {len(t)} outputs; {env}")

    ref_time, ref = timed(lambda: scipy_loop(x0, t, REFERENCE_RTOL, REFERENCE_ATOL))
    print(f"reference (per-trajectory DOP853, rtol {REFERENCE_RTOL:g}, atol {REFERENCE_ATOL:g}): {ref_time:.1f} s")

    phys_time, y = best_time(lambda: physode.simulate(system, x0_t, t_t), repeats)
    phys_err = max_err(y.numpy(), ref)
    print(f"physode: {phys_time:.3f} s, max abs error {phys_err:.2e}")
    counting = Counting(system)
    physode.simulate(counting, x0_t, t_t)
    one_time, _ = best_time(lambda: physode.simulate(system, x0_t[:1], t_t), repeats)

    print(f"(a) tolerance sweep on {n_sweep} trajectories:")
    tol_a = loosest_matching(lambda tol: scipy_loop(x0[:n_sweep], t, tol), ref[:n_sweep], phys_err)
    loop_time, y = timed(lambda: scipy_loop(x0, t, tol_a))
    loop_err = max_err(y, ref)
    print(f"(b) tolerance sweep on {n} trajectories:")
    tol_b = loosest_matching(lambda tol: scipy_stacked(x0, t, tol), ref, phys_err)
    stack_evaluations = []
    stack_time, y = best_time(lambda: scipy_stacked(x0, t, tol_b, stack_evaluations), repeats)
    stack_err = max_err(y, ref)

    rows = [
        ("physode.simulate (dopri8, defaults)", DEFAULT_RTOL, phys_err, phys_time),
        ("(a) scipy DOP853, per-trajectory loop", tol_a, loop_err, loop_time),
        ("(b) scipy DOP853, stacked vectorised", tol_b, stack_err, stack_time),
    ]
    ratio_a, ratio_b = loop_time / phys_time, stack_time / phys_time
    lines = [
        f"{n} pendulum trajectories, t in [0, 10], {len(t)} outputs; {env}.",
        f"Errors: max abs vs per-trajectory scipy DOP853 at rtol {REFERENCE_RTOL:g}, atol {REFERENCE_ATOL:g}.",
        "scipy tolerances: the loosest in 1e-8..1e-13 at least as accurate as physode (else 1e-13).",
        "Speed-up = time_other / time_physode.",
        "",
        "| method | tolerance | max abs error | wall time (s) | physode speed-up |",
        "|---|---|---|---|---|",
        *(f"| {m} | {tol:.0e} | {err:.2e} | {sec:.3f} | {sec / phys_time:.3g}x |" for m, tol, err, sec in rows),
        "",
        f"speed-up vs per-trajectory scipy loop: {ratio_a:.1f}x",
        f"speed-up vs stacked vectorised scipy: {ratio_b:.2f}x",
        f"where physode's time goes: {counting.evaluations} vector-field evaluations, "
        f"{1e6 * phys_time / counting.evaluations:.0f} us each all told (stacked scipy: {stack_evaluations[-1]}, "
        f"{1e6 * stack_time / stack_evaluations[-1]:.0f} us each); one trajectory alone takes {one_time:.3f} s",
    ]
    lines += [  # scipy may not reach physode's accuracy even at the tightest tolerance swept
        f"note: {m.split()[0]} is {err / phys_err:.2f}x less accurate than physode even so: at equal accuracy "
        "the speed-up would be larger than shown" for m, _, err, _ in rows[1:] if err > phys_err
    ]
    report = "\n".join(lines)
    print("\n" + report)

    raw = {
        "n_trajectories": n, "n_times": len(t), "t_end": 10.0, "repeats": repeats, "quick": args.quick,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "reference": {"rtol": REFERENCE_RTOL, "atol": REFERENCE_ATOL, "wall_time_s": ref_time},
        "methods": [{"method": m, "tolerance": tol, "max_abs_error": err, "wall_time_s": sec} for m, tol, err, sec in rows],
        "speedup_vs_loop": ratio_a, "speedup_vs_stacked": ratio_b, "sweep_trajectories_loop": n_sweep,
        "physode_evaluations": counting.evaluations, "stacked_evaluations": stack_evaluations[-1],
        "physode_one_trajectory_s": one_time,
    }
    write_outputs(args, "bench_simulate", "physode.simulate speed benchmark", report, raw)


if __name__ == "__main__":
    main()
