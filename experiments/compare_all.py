"""The README's comparison results: `physode compare SYSTEM --preset full` for every system, tables and figures copied.

For each built-in system (or those named with --systems) this runs the main job into runs/<system>-full
(reusing any stage already there), then copies its report.md to results/compare_<system>_full.md and the
figures the README shows to figures/<system>_<figure>.png. `--quick` runs the smoke preset (what the tests run).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from _common import ROOT, experiment_parser

from physode.files import atomic_write
from physode.job import run_compare

#: Per system, the run figures the README shows.
FIGURES = {
    "pendulum": ("vector_field_node", "phase_portraits", "error_vs_horizon"),
    "spring_mass": ("vector_field_node", "phase_portraits", "error_vs_horizon"),
    "nbody": ("orbits_node", "orbits_hnn", "orbits_interaction", "error_vs_horizon"),
    "double_pendulum": ("phase_portraits", "error_vs_horizon"),
    "cart_pole": ("phase_portraits", "error_vs_horizon"),
    "van_der_pol": ("vector_field_node", "phase_portraits", "error_vs_horizon"),
    "duffing": ("vector_field_node", "phase_portraits", "error_vs_horizon"),
    "lorenz": ("phase_portraits", "error_vs_horizon"),
}


def main() -> None:
    parser = experiment_parser(__doc__, "the smoke preset (seconds per system), for the tests")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder for the run folders")
    parser.add_argument("--systems", nargs="+", default=list(FIGURES), choices=list(FIGURES))
    args = parser.parse_args()
    preset = "smoke" if args.quick else "full"
    for system in args.systems:
        out = run_compare(system, preset, args.runs / f"{system}-{preset}", progress=sys.stderr.isatty())
        with atomic_write(args.results / f"compare_{system}_{preset}.md", "results table") as handle:
            handle.write((out / "report.md").read_bytes())
        for figure in FIGURES[system]:
            with atomic_write(args.figures / f"{system}_{figure}.png", "figure") as handle, \
                    open(out / "figures" / f"{figure}.png", "rb") as source:
                shutil.copyfileobj(source, handle)


if __name__ == "__main__":
    main()
