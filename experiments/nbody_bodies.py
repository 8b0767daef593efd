"""Many bodies: the comparison on two bodies, and the three-body interaction model on 2, 4 and 5 bodies untrained.

1. `physode compare` at the full preset on two bodies in the plane (every model side by side), into
   runs/nbody2-full; its table goes to results/compare_nbody2_full.md. The 3-body table is compare_all.py's.
2. The interaction model of the 3-body full comparison (runs/nbody-full, trained there if missing, as
   compare_all.py does) is given 2, 4 and 5 bodies with :meth:`~physode.models.InteractionODE.with_bodies`,
   no retraining, and scored by :func:`physode.compare` on 32 fresh test trajectories of that many bodies (seed 1)
   on the full preset's grid (to t = 10, train horizon 5, scored at 1x and 2x it), 3 bodies included.
   Fresh, few and no further than t = 10: more bodies meet closer, and without softening the truth must resolve
   every close encounter (256 trajectories of 4 bodies, as many as the training data, take longer than the rest of
   the script, and the truth of 5 bodies to t = 20 runs past 100 000 dopri8 steps). The 3-body model's scores
   to 4x the horizon are in compare_nbody_full.md.

Writes results/compare_nbody2_full.md and results/nbody_bodies.{md,json} (``--quick``: the smoke preset's
compare_nbody2_smoke.md and nbody_bodies_smoke.{md,json}).

``--quick`` (for the tests): the smoke preset and 8 test trajectories.

    python experiments/nbody_bodies.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import physode
from _common import ROOT, experiment_parser, write_outputs
from physode.files import atomic_write
from physode.job import PRESETS, run_compare

BODIES = (2, 3, 4, 5)
TEST_TRAJECTORIES = 32  #: fresh test trajectories per number of bodies (8 with --quick)
HORIZONS = (1, 2)  #: multiples of the training horizon the bodies are scored at (the fresh data's own end)


def main(argv=None) -> None:
    parser = experiment_parser(__doc__, "the smoke preset, for the tests")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder for the run folders")
    args = parser.parse_args(argv)
    preset = "smoke" if args.quick else "full"
    progress = sys.stderr.isatty()

    two = run_compare(physode.NBody(n_bodies=2), preset, args.runs / f"nbody2-{preset}", progress=progress)
    with atomic_write(args.results / f"compare_nbody2_{preset}.md", "results table") as handle:
        handle.write((two / "report.md").read_bytes())

    three = run_compare("nbody", preset, args.runs / f"nbody-{preset}", models=("interaction",), progress=progress)
    trained = physode.load_model(three / "interaction" / "model.pt")
    settings = PRESETS[preset]
    rows, raw = [], {}
    for n in BODIES:
        system = physode.NBody(n_bodies=n)
        fresh = physode.TrajectoryDataset.generate(system, 8 if args.quick else TEST_TRAJECTORIES, settings["t_end"],
                                                   settings["dt"], seed=1, progress=progress)
        data = physode.TrajectoryDataset.from_arrays(fresh.t, fresh.x, system=system, t_train=fresh.t_train,
                                                     split=np.full(len(fresh), 2), source="fresh test trajectories")
        report = physode.compare({"interaction": trained.with_bodies(n)}, data, horizons=HORIZONS, progress=progress)
        row = report.rows["interaction"]
        raw[str(n)] = {key: row[key] for key in ("field_error_test", "valid_time", "median_error", "energy_drift")}
        errors = " | ".join(f"{e:.2e}" for e in row["median_error"].values())
        rows.append(f"| {n}{' (trained)' if n == 3 else ''} | {len(data.test)} | {row['field_error_test']:.2e} | "
                    f"{errors} | {row['valid_time']:.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    horizons = " | ".join(f"median err @ {h} x t_train" for h in report.rows["interaction"]["median_error"])
    table = "\n".join([
        f"The interaction model trained on 3 bodies ({preset} preset, `{_shown(three)}`), given n bodies without retraining;",
        f"{len(data.test)} fresh test trajectories of n bodies (seed 1), train horizon "
        f"{data.t_train:g}, scored against the true system.",
        "",
        f"| bodies | test trajectories | field err (test) | {horizons} | valid time |",
        "|---|---|---|" + "---|" * len(report.rows["interaction"]["median_error"]) + "---|",
        *rows,
        "",
        f"Two bodies, every model trained on two: [compare_nbody2_{preset}.md](compare_nbody2_{preset}.md).",
    ])
    print(table)
    write_outputs(args, f"nbody_bodies_{preset}" if args.quick else "nbody_bodies", "Many bodies", table, raw)


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it (results name no machine's folders)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    main()
