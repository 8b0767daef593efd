"""How accurate is physode's ground truth? ``physode.simulate`` (defaults) against independent references.

Each row integrates over 10 time units and reports the max abs error over all trajectories, times and
state components against:

* closed forms (tests/problems.py): the spring chain's normal modes, the pendulum's Jacobi-elliptic
  solution, the circular two-body orbit;
* scipy's DOP853 per trajectory at rtol 3e-14, atol 1e-14 (tighter than rtol 1e-12, which is itself off by
  1e-9 to 1e-7 on chaotic n-body runs; rows for scipy at 1e-12 and 1e-13 show how far looser references are,
  and rows for physode at 1e-12 and 1e-13 how its error moves with the tolerance).

Then the symplectic integrators on a long eccentric Kepler orbit (1000 periods): their relative energy
error stays bounded, while an adaptive non-symplectic solve drifts. Writes
experiments/results/ground_truth.md and figures/symplectic_energy.png.

    python experiments/ground_truth.py [--quick]
"""

from __future__ import annotations

import math
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from _common import ROOT, experiment_parser, write_outputs

sys.path.insert(0, str(ROOT / "tests"))
from problems import kepler_circular, pendulum_exact, scipy_reference, spring_mass_exact

from physode import NBody, Pendulum, SpringMass, simulate

T10 = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
TIGHT = {"rtol": 3e-14, "atol": 1e-14}


def accuracy_rows(quick: bool):
    n = 2 if quick else 16
    rows = []

    def row(name, reference, got, seconds):
        rows.append((name, reference, float(np.abs(np.asarray(got) - reference[1]).max()), seconds))

    def timed(fn):
        start = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - start

    chain = SpringMass(stiffness=2.0, mass=0.5, damping=0.1, n_masses=3)
    x0 = chain.sample_initial_states(4 * n, seed=1)
    got, sec = timed(lambda: simulate(chain, x0, T10).numpy())
    exact = spring_mass_exact(2.0, 0.5, 0.1, 3, x0.numpy(), T10.numpy())
    row(f"spring_mass, 3 masses, damped ({4 * n} traj.)", ("closed form", exact), got, sec)

    theta0 = np.linspace(0.1, 2.8, n)
    x0 = torch.tensor(np.stack([theta0, np.zeros(n)], 1))
    got, sec = timed(lambda: simulate(Pendulum(), x0, T10).numpy())
    exact = np.stack([pendulum_exact(9.81, 1.0, th, T10.numpy()) for th in theta0])
    row(f"pendulum, theta0 in [0.1, 2.8] ({n} traj.)", ("closed form", exact), got, sec)

    kepler = NBody(n_bodies=2, masses=(1.0, 3.0), gravity=0.5)
    x0, exact = kepler_circular((1.0, 3.0), 1.2, 0.5, T10.numpy())
    got, sec = timed(lambda: simulate(kepler, torch.tensor(x0)[None], T10).numpy()[0])
    row("nbody, circular two-body orbit", ("closed form", exact), got, sec)

    for name, system in [("pendulum, sampled states", Pendulum()), ("nbody, 3 bodies 2-D (chaotic)", NBody()),
                         ("nbody, 4 bodies 3-D (chaotic)", NBody(n_bodies=4, dim=3))]:
        x0 = system.sample_initial_states(n, seed=4)
        ref = scipy_reference(system, x0, T10, **TIGHT)
        got, sec = timed(lambda system=system, x0=x0: simulate(system, x0, T10).numpy())
        row(f"{name} ({n} traj.)", ("scipy DOP853 3e-14", ref), got, sec)
        if "nbody" in name:  # how the error moves with the tolerance on chaotic runs, and how far the reference itself is
            for tol in (1e-12, 1e-13):
                loose, sec = timed(lambda system=system, x0=x0, tol=tol: simulate(system, x0, T10, rtol=tol,
                                                                                   atol=tol).numpy())
                row(f"  physode at rtol = atol = {tol:.0e} (not the default)", ("scipy DOP853 3e-14", ref), loose, sec)
            for tol in (1e-12, 1e-13):
                loose = scipy_reference(system, x0, T10, rtol=tol, atol=tol)
                error = float(np.abs(loose - ref).max())
                rows.append((f"  scipy DOP853 at rtol {tol:.0e}", "scipy DOP853 3e-14", error, float("nan")))
    return rows


def symplectic_study(quick: bool):
    system = NBody(n_bodies=2, masses=(1.0, 1.0))
    x0 = torch.tensor([0.5, 0.0, -0.5, 0.0, 0.0, 0.9, 0.0, -0.9], dtype=torch.float64)  # eccentricity 0.62
    period = 2 * math.pi * (1 / 0.38) ** 1.5 / math.sqrt(2)
    periods = 30 if quick else 1000
    t = torch.linspace(0.0, periods * period, periods * 10 + 1, dtype=torch.float64)
    runs = {
        "leapfrog, h = P/200": dict(method="leapfrog", step_size=period / 200),
        "yoshida4, h = P/200": dict(method="yoshida4", step_size=period / 200),
        "dopri5, rtol = atol = 1e-8": dict(method="dopri5", rtol=1e-8, atol=1e-8),
    }
    drift = {}
    for label, options in runs.items():
        x = simulate(system, x0, t, **options)
        drift[label] = ((system.energy(x) - system.energy(x0)) / system.energy(x0)).abs().numpy()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, d in drift.items():
        ax.semilogy(t.numpy() / period, np.maximum(d, 1e-12), label=label, lw=0.8)
    ax.set(ylim=(1e-9, 1e-2), xlabel="time (orbital periods)", ylabel="|E(t) - E(0)| / |E(0)|",
           title="Energy error on an eccentric Kepler orbit (e = 0.62)")
    ax.legend()
    fig.tight_layout()
    tenth = len(t) // 10
    rows = [(label, float(d[:tenth].max()), float(d[-tenth:].max())) for label, d in drift.items()]
    return fig, rows, periods


def main(argv=None):
    args = experiment_parser(__doc__, "fewer trajectories and periods (for tests)").parse_args(argv)

    lines = ["| system | reference | max abs error | time (s) |", "|---|---|---|---|"]
    for name, reference, err, sec in accuracy_rows(args.quick):
        reference = reference if isinstance(reference, str) else reference[0]
        lines.append(f"| {name} | {reference} | {err:.1e} | {'' if math.isnan(sec) else f'{sec:.2f}'} |")
    fig, energy_rows, periods = symplectic_study(args.quick)
    lines += ["", f"Relative energy error on an eccentric Kepler orbit over {periods} periods:", "",
              "| integrator | max over first 10% | max over last 10% |", "|---|---|---|"]
    lines += [f"| {label} | {first:.1e} | {last:.1e} |" for label, first, last in energy_rows]
    report = "\n".join(lines)
    print(report)
    write_outputs(args, "ground_truth", "Ground-truth accuracy", report, figure=fig, figure_name="symplectic_energy")


if __name__ == "__main__":
    main()
