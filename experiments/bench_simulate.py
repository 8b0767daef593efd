"""Speed benchmark: ``physode.simulate`` against scipy DOP853 on pendulum trajectories, at matched accuracy.

What it measures: wall time to integrate N pendulum trajectories (default 1024, from
``Pendulum().sample_initial_states(N, seed=0)``) over t in [0, 10] with 101 output times, by

* physode: ``physode.simulate(system, x0, t, rtol=tol, atol=tol)`` (batched dopri8);
* (a) a per-trajectory loop of scipy ``solve_ivp(method="DOP853")``, what users write by hand;
* (b) one scipy DOP853 solve of the stacked, vectorised (2N,) system.

Errors are max abs errors over all trajectories, times and components against a tight reference:
per-trajectory scipy DOP853 with rtol = 2.5e-14 (scipy's floor is 100 eps), atol = 1e-15.

Matched accuracy: each method sweeps its tolerance (rtol = atol, three steps per decade: 1, 5, 2, 1, ...;
physode 1e-9..1e-14, scipy 1e-8..1e-13).
For each accuracy level E in 1e-8, 1e-9, 1e-10, 1e-11 every method runs at its LOOSEST tolerance whose
max abs error is <= E, and the times are compared there: what each costs to deliver that accuracy.
Every sweep runs on all N trajectories (the slow loop (a) once per tolerance). physode's own
defaults (1e-14, tight for chaotic n-body ground truth) are timed too, for reference. The tolerances
that the levels pick are then timed again in two rounds, all methods taking turns, and each keeps its
best time over the sweep and the rounds: every method is timed the same number of times, 3 (2 with
--quick), physode and the stacked solve each time after an untimed warm-up call (the slow loop (a) needs
none: its per-call set-up is repeated 1024 times within each run). The speed-up ratio is
time_other / time_physode.

    python experiments/bench_simulate.py            # 1024 trajectories
    python experiments/bench_simulate.py --quick    # 128 trajectories, fewer repeats, one tolerance per decade (tests)
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


def one_two_five(first: int, last: int) -> tuple[float, ...]:
    """Tolerances 1e{first}, 5e{first-1}, 2e{first-1}, 1e{first-1}, ... down to 1e{last}: three per decade."""
    return tuple(float(f"{m}e{e}") for e in range(first, last - 1, -1) for m in ((1,) if e == first else (5, 2, 1)))


TOLERANCES = one_two_five(-8, -13)
PHYSODE_TOLERANCES = one_two_five(-9, -14)
LEVELS = (1e-8, 1e-9, 1e-10, 1e-11)
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


def loosest(errors: dict, level: float):
    """The loosest tolerance of ``{tol: error}`` whose error is <= level, or None."""
    meeting = [tol for tol, err in errors.items() if err <= level]
    return max(meeting) if meeting else None


def main(argv=None):
    parser = experiment_parser(__doc__, "128 trajectories, fewer repeats, one tolerance per decade (for tests)")
    parser.add_argument("--n", type=int, default=None, help="number of trajectories (default 1024, 128 with --quick)")
    args = parser.parse_args(argv)
    n = args.n or (128 if args.quick else 1024)
    repeats, retime_rounds = 1, (1 if args.quick else 2)  # one timed call per turn, as the loop gets
    ours, theirs = PHYSODE_TOLERANCES, TOLERANCES
    if args.quick:  # 1e-9, 1e-10, ...: still every level, at a third of the sweep
        ours, theirs = (tuple(tol for tol in sweep if f"{tol:.0e}".startswith("1e")) for sweep in (ours, theirs))

    system = physode.Pendulum()
    x0_t = system.sample_initial_states(n, seed=0)
    t_t = torch.linspace(0, 10, 101, dtype=torch.float64)
    x0, t = x0_t.numpy(), t_t.numpy()
    env = f"torch threads: {torch.get_num_threads()}, os.cpu_count(): {os.cpu_count()}"
    print(f"{n} pendulum trajectories, t in [0, 10], {len(t)} outputs; {env}")

    ref_time, ref = timed(lambda: scipy_loop(x0, t, REFERENCE_RTOL, REFERENCE_ATOL))
    print(f"reference (per-trajectory DOP853, rtol {REFERENCE_RTOL:g}, atol {REFERENCE_ATOL:g}): {ref_time:.1f} s")

    physode_runs = {}  # tol -> (time, error)
    for tol in ours:
        sec, y = best_time(lambda tol=tol: physode.simulate(system, x0_t, t_t, rtol=tol, atol=tol), repeats)
        physode_runs[tol] = (sec, max_err(y.numpy(), ref))
        print(f"physode tol {tol:.0e}: {sec:.3f} s, max abs error {physode_runs[tol][1]:.2e}")
    default_time, y = best_time(lambda: physode.simulate(system, x0_t, t_t), repeats)
    default_err = max_err(y.numpy(), ref)
    counting = Counting(system)
    physode.simulate(counting, x0_t, t_t)
    one_time, _ = best_time(lambda: physode.simulate(system, x0_t[:1], t_t), repeats)

    runs_a = {}  # tol -> (time, error): the full loop, one run per tolerance
    for tol in theirs:
        sec, y = timed(lambda tol=tol: scipy_loop(x0, t, tol))
        runs_a[tol] = (sec, max_err(y, ref))
        print(f"(a) loop tol {tol:.0e}: {sec:.1f} s, max abs error {runs_a[tol][1]:.2e}")
    print(f"(b) tolerance sweep on {n} trajectories:")
    runs_b, evaluations = {}, {}
    for tol in theirs:
        counts = []
        sec, y = best_time(lambda tol=tol, counts=counts: scipy_stacked(x0, t, tol, counts), repeats)
        runs_b[tol], evaluations[tol] = (sec, max_err(y, ref)), counts[-1]

    # The sweeps timed each tolerance at a different moment (the loop's minutes after physode's). The
    # tolerances that the levels pick are timed again in turns, and each keeps its best time, so that a
    # slow spell of the machine costs both sides alike.
    sweeps = {"physode": physode_runs, "loop": runs_a, "stacked": runs_b}
    picked = sorted({(name, tol) for level in LEVELS for name, runs in sweeps.items()
                     if (tol := loosest({k: v[1] for k, v in runs.items()}, level)) is not None})
    for round_ in range(retime_rounds):
        print(f"timing again, round {round_ + 1} of {retime_rounds}: {len(picked)} (method, tolerance) pairs")
        for name, tol in picked:
            if name == "physode":
                sec = best_time(lambda tol=tol: physode.simulate(system, x0_t, t_t, rtol=tol, atol=tol), repeats)[0]
            elif name == "loop":
                sec = timed(lambda tol=tol: scipy_loop(x0, t, tol))[0]
            else:
                sec = best_time(lambda tol=tol: scipy_stacked(x0, t, tol), repeats)[0]
            sweeps[name][tol] = (min(sweeps[name][tol][0], sec), sweeps[name][tol][1])

    levels = []
    for level in LEVELS:
        tol_p = loosest({k: v[1] for k, v in physode_runs.items()}, level)
        tol_a = loosest({k: v[1] for k, v in runs_a.items()}, level)
        tol_b = loosest({k: v[1] for k, v in runs_b.items()}, level)
        if tol_p is None or tol_a is None:
            print(f"level {level:.0e}: not reached by {'physode' if tol_p is None else '(a)'}; skipped")
            continue
        row = {"level": level, "physode": (tol_p, *physode_runs[tol_p]), "loop": (tol_a, *runs_a[tol_a]),
               "stacked": None if tol_b is None else (tol_b, *runs_b[tol_b])}
        row["speedup_vs_loop"] = row["loop"][1] / row["physode"][1]
        row["speedup_vs_stacked"] = None if tol_b is None else row["stacked"][1] / row["physode"][1]
        levels.append(row)

    def cell(run):
        return "-" if run is None else f"{run[0]:.0e} / {run[2]:.1e} / {run[1]:.3f}"

    ratios = [r["speedup_vs_loop"] for r in levels]
    lines = [
        f"{n} pendulum trajectories, t in [0, 10], {len(t)} outputs; {env}.",
        f"Errors: max abs vs per-trajectory scipy DOP853 at rtol {REFERENCE_RTOL:g}, atol {REFERENCE_ATOL:g}.",
        "Each cell: the loosest tolerance (rtol = atol) whose max abs error is <= the level / that error / wall time (s),",
        f"the best over the sweep and {retime_rounds} more round{'s' if retime_rounds != 1 else ''} in turns.",
        "Speed-up = time_other / time_physode at the same level.",
        "",
        "| accuracy level | physode.simulate (dopri8) | (a) scipy DOP853, per-trajectory loop | (b) scipy DOP853, stacked | "
        "speed-up vs (a) | speed-up vs (b) |",
        "|---|---|---|---|---|---|",
        *(f"| {r['level']:.0e} | {cell(r['physode'])} | {cell(r['loop'])} | {cell(r['stacked'])} | "
          f"{r['speedup_vs_loop']:.1f}x | "
          + ("-" if r["speedup_vs_stacked"] is None else f"{r['speedup_vs_stacked']:.2f}x") + " |" for r in levels),
        "",
        f"speed-up vs per-trajectory scipy loop at matched accuracy: {min(ratios):.1f}x to {max(ratios):.1f}x",
        f"physode at its defaults (rtol = atol = {DEFAULT_RTOL:g}): {default_time:.3f} s, max abs error {default_err:.2e} "
        f"({counting.evaluations} vector-field evaluations, {1e6 * default_time / counting.evaluations:.0f} us each all "
        f"told); one trajectory alone takes {one_time:.3f} s",
    ]
    report = "\n".join(lines)
    print("\n" + report)

    raw = {
        "n_trajectories": n, "n_times": len(t), "t_end": 10.0, "repeats": repeats, "retime_rounds": retime_rounds,
        "quick": args.quick,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "reference": {"rtol": REFERENCE_RTOL, "atol": REFERENCE_ATOL, "wall_time_s": ref_time},
        "physode": {f"{k:.0e}": {"wall_time_s": v[0], "max_abs_error": v[1]} for k, v in physode_runs.items()},
        "loop": {f"{k:.0e}": {"wall_time_s": v[0], "max_abs_error": v[1]} for k, v in runs_a.items()},
        "stacked": {f"{k:.0e}": {"wall_time_s": v[0], "max_abs_error": v[1], "evaluations": evaluations[k]}
                    for k, v in runs_b.items()},
        "levels": levels, "speedup_vs_loop_min": min(ratios), "speedup_vs_loop_max": max(ratios),
        "physode_defaults": {"rtol": DEFAULT_RTOL, "wall_time_s": default_time, "max_abs_error": default_err,
                             "evaluations": counting.evaluations},
        "physode_one_trajectory_s": one_time,
    }
    write_outputs(args, "bench_simulate", "physode.simulate speed benchmark", report, raw)


if __name__ == "__main__":
    main()
