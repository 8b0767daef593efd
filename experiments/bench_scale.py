"""Scale: n-body simulation throughput against the number of bodies, and data-parallel training.

In one run, on this machine:

1. Simulation: body-steps per second of ``physode.simulate(NBody(n, softening=0.05), ...)`` with
   fixed-step RK4 (a body-step is one body advanced by one RK4 step, four field evaluations) for
   n = 3, 32, 256, 1024 bodies, each with a batch of trajectories (1024, 64, 4, 1 of them) from
   ``sample_initial_states``, on the CPU and, when torch sees a GPU, on the GPU.
2. Training: optimiser steps per second of ``physode train`` (a NeuralODE on 256 pendulum trajectories,
   global batch 128, 20-step windows at the end of the curriculum) in one process (with 2 and with 1
   intra-op threads) and in 2 processes under ``torchrun`` (gloo, 1 thread each; each process rolls out
   half of the global batch); on the GPU, one process. Strong scaling (same global batch): the
   efficiency is the 2-process rate over twice the 1-process, 1-thread rate (1.0 = perfect, a core per
   process), and "speed-up on these cores" compares the 2 processes with one process using the same 2
   cores. Weak scaling: 2 processes with a global batch of 256 (128 windows each), in windows per second
   against one process with 128.

The rates come from the runs' own clocks: simulation from a timed ``simulate`` call after a warm-up,
training from the seconds that ``physode train`` records (start-up and data loading excluded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import experiment_parser, write_outputs

import physode

BODIES = {3: 1024, 32: 64, 256: 4, 1024: 1}  # bodies -> trajectories simulated together
STEP = 1e-3  # RK4 step (time units)


def simulation_rate(n_bodies: int, batch: int, device: str, seconds: float) -> dict:
    """Body-steps per second of fixed-step RK4 on ``device``, over about ``seconds``."""
    system = physode.NBody(n_bodies=n_bodies, softening=0.05)
    x0 = system.sample_initial_states(batch, seed=0).to(device)

    def run(steps: int) -> float:
        t = torch.tensor([0.0, steps * STEP], dtype=torch.float64, device=device)
        start = time.perf_counter()
        physode.simulate(system, x0, t, method="rk4", step_size=STEP, device=device)
        if device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(2)  # warm-up
    steps = max(2, min(5000, int(seconds / max(run(4) / 4, 1e-6))))
    elapsed = run(steps)
    rate = n_bodies * batch * steps / elapsed
    print(f"simulate n={n_bodies:5d} x {batch:4d} on {device}: {steps} steps in {elapsed:.2f}s = {rate:,.0f} body-steps/s")
    return {"device": device, "bodies": n_bodies, "trajectories": batch, "steps": steps, "seconds": elapsed,
            "body_steps_per_s": rate}


def training_rate(data: Path, out: Path, processes: int, threads: int, steps: int, device: str,
                  batch: int = 128) -> dict:
    """Steps per second of ``physode train`` as recorded by the run (the mean over its steps)."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = [*(launch if processes > 1 else [sys.executable]), "-m", "physode", "train", "--data", str(data),
               "--out", str(out), "--steps", str(steps), "--val-every", str(steps), "--checkpoint-every", str(steps),
               "--batch-size", str(batch), "--device", device, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    seconds = physode.load_model(out / "model.pt").training_info["seconds"]
    rate = steps / seconds
    print(f"train {processes} process(es) x {threads} thread(s) on {device}, batch {batch}: {steps} steps in "
          f"{seconds:.1f}s = {rate:.1f} steps/s, {rate * batch:,.0f} windows/s")
    return {"device": device, "processes": processes, "threads": threads, "batch": batch, "steps": steps,
            "seconds": seconds, "steps_per_s": rate, "windows_per_s": rate * batch}


def main() -> None:
    args = experiment_parser(__doc__, "3 and 32 bodies, 20 training steps: for the tests").parse_args()
    gpu = torch.cuda.is_available()
    devices = ["cpu", "cuda"] if gpu else ["cpu"]
    bodies = {n: b for n, b in BODIES.items() if n <= 32} if args.quick else BODIES
    seconds, steps = (0.3, 20) if args.quick else (3.0, 300)

    torch.set_num_threads(2)
    simulation = [simulation_rate(n, batch, device, seconds) for device in devices for n, batch in bodies.items()]

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = folder / "pendulum.npz"
        physode.TrajectoryDataset.generate(physode.Pendulum(), 256, t_end=10.0, dt=0.1, seed=0,
                                           device="cpu").save(data)
        runs = [(1, 2, "cpu", 128), (1, 1, "cpu", 128), (2, 1, "cpu", 128), (2, 1, "cpu", 256)]
        runs += [(1, 2, "cuda", 128)] if gpu else []
        training = [training_rate(data, folder / f"run{i}", p, t, steps, d, b) for i, (p, t, d, b) in enumerate(runs)]
    two_threads, one_thread, two_processes, weak = training[:4]
    efficiency = two_processes["steps_per_s"] / (2 * one_thread["steps_per_s"])
    speedup = two_processes["steps_per_s"] / two_threads["steps_per_s"]
    weak_efficiency = weak["windows_per_s"] / (2 * one_thread["windows_per_s"])
    print(f"strong scaling efficiency (2 processes vs 2 x 1 process, 1 thread each): {efficiency:.2f}; "
          f"speed-up on these {os.cpu_count()} cores over 1 process with 2 threads: {speedup:.2f}x; "
          f"weak scaling efficiency (128 windows per process): {weak_efficiency:.2f}")

    name = "bench_scale_quick" if args.quick else "bench_scale"
    gpu_name = torch.cuda.get_device_name(0) if gpu else None
    lines = [f"Machine: {os.cpu_count()} CPU cores, torch {torch.__version__}"
             + (f", GPU: {gpu_name}" if gpu else ", no GPU") + ".", "",
             "| device | bodies | trajectories | RK4 steps | seconds | body-steps/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['device']} | {r['bodies']} | {r['trajectories']} | {r['steps']} | {r['seconds']:.2f} | "
              f"{r['body_steps_per_s']:,.0f} |" for r in simulation]
    lines += ["", "| training (NeuralODE, pendulum) | device | processes x threads | global batch | steps | seconds "
              "| steps/s | windows/s |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| physode train | {r['device']} | {r['processes']} x {r['threads']} | {r['batch']} | {r['steps']} | "
              f"{r['seconds']:.1f} | {r['steps_per_s']:.1f} | {r['windows_per_s']:,.0f} |" for r in training]
    lines += ["", f"Strong scaling (global batch 128), 2 processes: efficiency {efficiency:.2f} (rate of 2 processes / "
              f"(2 x rate of 1 process), 1 thread each), speed-up over one process on the same cores {speedup:.2f}x. "
              f"Weak scaling (128 windows per process): efficiency {weak_efficiency:.2f}."]
    raw = {"simulation": simulation, "training": training, "efficiency": efficiency, "speedup_same_cores": speedup,
           "weak_efficiency": weak_efficiency, "cpu_count": os.cpu_count(), "gpu": gpu_name,
           "torch": torch.__version__}
    write_outputs(args, name, "Scale: n-body throughput and data-parallel training", "\n".join(lines), raw,
                  figure=_figure(simulation, training))
    print(json.dumps({"efficiency": efficiency, "speedup_same_cores": speedup, "weak_efficiency": weak_efficiency}))


def _figure(simulation, training):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for device in dict.fromkeys(r["device"] for r in simulation):
        rows = [r for r in simulation if r["device"] == device]
        left.loglog([r["bodies"] for r in rows], [r["body_steps_per_s"] for r in rows], "o-", label=device)
    left.set(xlabel="bodies", ylabel="body-steps / s (RK4)", title="n-body simulation throughput")
    left.legend()
    labels = [f"{r['device']}, {r['processes']}x{r['threads']}\nbatch {r['batch']}" for r in training]
    right.bar(labels, [r["windows_per_s"] for r in training], color="tab:blue")
    right.set(ylabel="training windows / s", title="physode train (processes x threads)")
    right.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main()
