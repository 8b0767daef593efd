"""Soak run: many consecutive short train / evaluate / draw / env cycles in one process; does memory grow?

Each cycle builds a NeuralODE, trains it for a few steps with a run folder (checkpoints, metrics),
loads it back, scores it with :func:`physode.compare`, draws its training figure, and steps a learned
Gymnasium env from it. The resident set size (RSS, after garbage collection) is read after every
cycle. The first cycles warm caches and allocators up; after them memory must not grow: the script
reports the RSS after the warm-up and at the end, and the growth per cycle fitted over the second half.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import experiment_parser, write_outputs
from tqdm.auto import tqdm

import physode
import physode.envs

WARMUP = 5


def rss_mib() -> float:
    """Resident set size of this process now, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def cycle(data, folder: Path, seed: int) -> None:
    import matplotlib.pyplot as plt

    torch.manual_seed(seed)
    model = physode.build_model("node", data, hidden=16)
    physode.fit(model, data, physode.TrainConfig(steps=20, batch_size=16, window=4, val_every=10, checkpoint_every=10),
                out_dir=folder, overwrite=True)  # every third cycle reuses a folder
    model = physode.load_model(folder / "model.pt")
    physode.compare({"node": model}, data, horizons=(1.0, 2.0), grid_points=8)
    physode.plot.training_figure(folder / "metrics.jsonl", path=folder / "training.png")
    plt.close("all")
    env = physode.envs.LearnedDynamicsEnv(model, reference=True, allow_uncontrolled=True)
    env.reset(seed=seed)
    for _ in range(20):
        env.step(env.action_space.sample())
    env.close()


def main() -> None:
    parser = experiment_parser(__doc__, "12 cycles, for the tests")
    parser.add_argument("--cycles", type=int, default=400, help="cycles of the full run (default 400)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")
    import physode.plot  # noqa: F401

    cycles = 12 if args.quick else args.cycles
    data = physode.TrajectoryDataset.generate(physode.Pendulum(), 16, t_end=2.0, dt=0.1, seed=0)
    memory = []
    with tempfile.TemporaryDirectory() as root:
        for k in tqdm(range(cycles), desc="soak", unit="cycle", disable=args.quick):
            cycle(data, Path(root) / f"run{k % 3}", k)
            gc.collect()
            memory.append(rss_mib())
    later = np.arange(cycles // 2, cycles)
    slope = float(np.polyfit(later, np.array(memory)[later], 1)[0])
    after_warmup, end = memory[WARMUP - 1], memory[-1]
    table = "\n".join([
        "| cycles | RSS after warm-up (MiB) | RSS at the end (MiB) | growth after warm-up (MiB) "
        "| fitted growth per cycle, 2nd half (KiB) |",
        "|---|---|---|---|---|",
        f"| {cycles} | {after_warmup:.1f} | {end:.1f} | {end - after_warmup:+.1f} | {slope * 1024:+.1f} |",
    ])
    print(table)
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, cycles + 1), memory, marker=".")
    ax.axvline(WARMUP, color="0.6", ls=":", label="end of warm-up")
    ax.set(xlabel="cycle (train 20 steps, evaluate, draw, env)", ylabel="RSS (MiB)", title="Soak run")
    ax.legend()
    figure.tight_layout()
    write_outputs(args, "soak_quick" if args.quick else "soak", "Soak run: memory over repeated cycles", table,
                  raw={"rss_mib": memory, "slope_kib_per_cycle": slope * 1024, "warmup": WARMUP}, figure=figure)


if __name__ == "__main__":
    main()
