"""Chen et al. (2018), "Neural Ordinary Differential Equations", Table 1 at small scale: ResNet, RK-Net, ODE-Net, MLP.

The paper's MNIST table (test error, parameters, memory): 1-layer MLP 1.60%, 0.24M; ResNet 0.41%, 0.60M,
O(L); RK-Net 0.47%, 0.22M, O(L~); ODE-Net 0.42%, 0.22M, O(1). Here the same architectures are built at
a size suited to the data and trained with one recipe:

* **ResNet**: downsampling convolutions, then 6 residual blocks ``z + f_k(z)``, each with its own
  weights, then a head (norm, relu, global average pool, Linear).
* **RK-Net**: the same downsampling and head around one ``physode.ODEBlock(f)`` on ``t in [0, 1]``
  solved by ``rk4`` with a fixed step, gradients by backprop through the solver (``adjoint=False``).
* **ODE-Net**: the same, solved by ``dopri5`` at rtol = atol = 1e-3, gradients by the adjoint method.
* **MLP**: one hidden layer of 300 relu units (the paper's 0.24M-parameter MLP on 784 inputs).

``f`` is the paper's ODE function: norm, relu, conv 3x3, norm, relu, conv 3x3, norm (GroupNorm with
``min(32, C)`` groups); in the ODE and RK nets each conv also sees ``t`` as an extra input channel, as in
the paper; the ResNet's blocks have no ``t``. Downsampling: conv 3x3 (1 -> C), then one (8x8 digits:
8 -> 4) or two (28x28 MNIST: 28 -> 14 -> 7) conv 4x4 stride 2 with norm and relu between.

Data: scikit-learn's bundled 8x8 digits (1797 images; a stratified 80/20 split, seeded) by default, or
MNIST from a local folder of the standard IDX files (``--mnist DIR``: train-images-idx3-ubyte,
train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally ``.gz``; nothing is
downloaded; on CPU the MNIST defaults take hours: the ODE-Net's training step is about 2.5 s on one thread, so
use ``--limit``, ``--epochs``, ``--threads`` or a GPU). Training: Adam, cosine learning-rate decay, cross-entropy,
the same for every model; the seed (``--seed``) fixes the split, the initial weights and the batch order.

Memory: each model trains in a fresh process (multiprocessing, "spawn"). On CPU the peak resident set
size during the training loop is measured against the RSS just before it (the kernel's peak counter is
reset first through /proc/self/clear_refs; ``resource.getrusage(...).ru_maxrss``); on CUDA,
``torch.cuda.max_memory_allocated`` over the allocation before training. Both include the optimiser's
state and the allocator's behaviour, so the script also counts, exactly, the activation bytes that one
training forward pass keeps for the backward pass (``torch.autograd.graph.saved_tensors_hooks``,
parameters excluded): the quantity the paper's O(L) / O(L~) / O(1) column is about. NFE: the ODE block's
field evaluations per training step, forward and backward (0 backward for direct backprop).
Writes experiments/results/paper_classification.{md,json} and figures/paper_classification.png
(``paper_classification_quick.*`` with ``--quick``; ``paper_classification_mnist[_quick].*`` with ``--mnist``).

    python experiments/paper_classification.py [--quick] [--mnist DIR] [--seed 0]
"""

from __future__ import annotations

import gzip
import math
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also in the spawned workers
from _common import experiment_parser, write_outputs

import physode

MODELS = {"mlp": "1-layer MLP", "resnet": "ResNet", "rk_net": "RK-Net", "ode_net": "ODE-Net"}
PAPER = {  # Chen et al. (2018), Table 1 (MNIST)
    "mlp": {"test_error": 1.60, "parameters": "0.24M", "memory": "-"},
    "resnet": {"test_error": 0.41, "parameters": "0.60M", "memory": "O(L)"},
    "rk_net": {"test_error": 0.47, "parameters": "0.22M", "memory": "O(L~)"},
    "ode_net": {"test_error": 0.42, "parameters": "0.22M", "memory": "O(1)"},
}
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}


# ----------------------------------------------------------------------------------------------- data

def read_idx(path) -> np.ndarray:
    """The array in one IDX file (the MNIST format; ``.gz`` files are decompressed): shape from its header."""
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number {raw[:4].hex()}); "
                         "give the uncompressed or .gz MNIST files")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"{str(path)!r} is truncated or corrupt: its header says shape {shape} ({math.prod(shape)} values "
                         f"of {dtype.itemsize} bytes) but it holds {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(folder) -> dict[str, np.ndarray]:
    """MNIST's four IDX files from ``folder`` (each may be gzipped): ``x_train (N, 28, 28)`` uint8, ``y_train (N,)``, ..."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--mnist: folder {str(folder)!r} does not exist; give the folder that holds "
                                f"{', '.join(MNIST_FILES.values())} (optionally .gz)")
    out = {}
    for key, name in MNIST_FILES.items():
        path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"--mnist: {name} (or {name}.gz) is missing from {str(folder)!r}; the folder needs "
                                    f"{', '.join(MNIST_FILES.values())}; nothing is downloaded")
        out[key] = read_idx(path)
    for part in ("train", "test"):
        if len(out[f"x_{part}"]) != len(out[f"y_{part}"]):
            raise ValueError(f"--mnist: {part} images and labels differ in number "
                             f"({len(out[f'x_{part}'])} vs {len(out[f'y_{part}'])})")
    return out


def load_data(mnist, seed: int, limit: int | None):
    """Standardised images ``(N, 1, H, W)`` float32 and labels ``(N,)`` int64, train and test, and the data's name.

    ``limit`` keeps a seeded, stratified subset of at most ``limit`` training and ``limit // 2`` test images.
    """
    from sklearn.model_selection import train_test_split

    if mnist is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y = digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int64)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
        name = "scikit-learn digits 8x8"
    else:
        d = load_mnist(mnist)
        x_train, y_train = d["x_train"].astype(np.float32) / 255.0, d["y_train"].astype(np.int64)
        x_test, y_test = d["x_test"].astype(np.float32) / 255.0, d["y_test"].astype(np.int64)
        name = f"MNIST ({mnist})"

    def subset(x, y, n):
        if n is None or n >= len(y):
            return x, y
        x, _, y, _ = train_test_split(x, y, train_size=n, stratify=y, random_state=seed)
        return x, y

    if limit is not None:
        x_train, y_train = subset(x_train, y_train, limit)
        x_test, y_test = subset(x_test, y_test, max(limit // 2, 10 * len(np.unique(y_test))))
    mean, std = float(x_train.mean()), float(x_train.std())
    prep = lambda x: torch.from_numpy((x[:, None] - mean) / std).float()  # noqa: E731
    return prep(x_train), torch.from_numpy(y_train), prep(x_test), torch.from_numpy(y_test), name


# --------------------------------------------------------------------------------------------- models

def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels), channels)


class TimeConv(nn.Conv2d):
    """A 3x3 convolution that sees ``t`` as one extra, constant input channel (the paper's ConcatConv2d)."""

    def __init__(self, channels: int):
        super().__init__(channels + 1, channels, 3, padding=1)

    def forward(self, t, z):
        tt = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0], 1, *z.shape[2:])
        return super().forward(torch.cat([tt, z], 1))


class Field(nn.Module):
    """``f(t, z)``: norm, relu, conv, norm, relu, conv, norm; the convs see ``t`` when ``time`` is set."""

    def __init__(self, channels: int, time: bool):
        super().__init__()
        self.time = time
        conv = (lambda: TimeConv(channels)) if time else (lambda: nn.Conv2d(channels, channels, 3, padding=1))
        self.norm1, self.conv1, self.norm2 = norm(channels), conv(), norm(channels)
        self.conv2, self.norm3 = conv(), norm(channels)

    def forward(self, t, z):
        call = (lambda conv, h: conv(t, h)) if self.time else (lambda conv, h: conv(h))
        h = call(self.conv1, torch.relu(self.norm1(z)))
        return self.norm3(call(self.conv2, torch.relu(self.norm2(h))))


class Residual(nn.Module):
    """``z + f(z)``, a ResNet block with its own weights."""

    def __init__(self, channels: int):
        super().__init__()
        self.f = Field(channels, time=False)

    def forward(self, z):
        return z + self.f(None, z)


def downsampling(channels: int, side: int) -> nn.Sequential:
    """conv 3x3 (1 -> C), then conv 4x4 stride 2 once (side < 16) or twice, with norm and relu between."""
    layers = [nn.Conv2d(1, channels, 3, padding=1)]
    for _ in range(1 if side < 16 else 2):
        layers += [norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 4, stride=2, padding=1)]
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """Downsampling, a feature stage (residual blocks or an ODE block), then norm, relu, average pool, Linear."""

    def __init__(self, channels: int, side: int, features: nn.Module, classes: int = 10):
        super().__init__()
        self.down = downsampling(channels, side)
        self.features = features
        self.head = nn.Sequential(norm(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes))

    def forward(self, x):
        return self.head(self.features(self.down(x)))


def build_model(name: str, channels: int, side: int, rk_step: float = 0.25, tol: float = 1e-3) -> nn.Module:
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(side * side, 300), nn.ReLU(), nn.Linear(300, 10))
    if name == "resnet":
        return ConvNet(channels, side, nn.Sequential(*(Residual(channels) for _ in range(6))))
    if name == "rk_net":
        return ConvNet(channels, side, physode.ODEBlock(Field(channels, time=True), solver="rk4", step_size=rk_step,
                                                        adjoint=False))
    if name == "ode_net":
        return ConvNet(channels, side, physode.ODEBlock(Field(channels, time=True), solver="dopri5", rtol=tol, atol=tol,
                                                        adjoint=True))
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


# --------------------------------------------------------------------------------------- measurement

def current_rss_kib() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of the distinct tensors (parameters excluded) that one training forward pass keeps for backward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = nn.functional.cross_entropy(model(x), y)
    del loss
    return sum(seen.values())


# ---------------------------------------------------------------------------------------- one model

def train_one(config: dict) -> dict:
    """Train and test one model (run in a fresh process, so its memory is its own)."""
    from tqdm import tqdm

    torch.set_num_threads(config["threads"])
    seed, name = config["seed"], config["model"]
    x_train, y_train, x_test, y_test, _ = load_data(config["mnist"], seed, config["limit"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    model = build_model(name, config["channels"], x_train.shape[-1], config["rk_step"], config["tol"]).to(device)
    block = getattr(model, "features", None)
    block = block if isinstance(block, physode.ODEBlock) else None
    parameters = sum(p.numel() for p in model.parameters())
    steps_per_epoch = math.ceil(len(y_train) / config["batch_size"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config["epochs"] * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        exact_peak = reset_peak_rss()
        before = current_rss_kib()
    history, nfe_f, nfe_b = [], [], []
    start = time.perf_counter()
    bar = tqdm(range(config["epochs"]), desc=MODELS[name], disable=config["quiet"] or None, file=sys.stderr)
    for epoch in bar:
        order = torch.randperm(len(y_train), generator=gen)
        losses, correct, ef, eb = [], 0, [], []
        for k in range(steps_per_epoch):
            rows = order[k * config["batch_size"] : (k + 1) * config["batch_size"]]
            xb, yb = x_train[rows].to(device), y_train[rows].to(device)
            logits = model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1) == yb).sum())
            if block is not None:
                ef.append(block.nfe_forward)
                eb.append(block.nfe_backward)
        nfe_f += ef
        nfe_b += eb
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - start, "train_loss": float(np.mean(losses)),
               "train_error": 100.0 * (1 - correct / len(y_train))}
        if block is not None:
            row |= {"nfe_forward": float(np.mean(ef)), "nfe_backward": float(np.mean(eb))}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", **({"nfe": f"{row['nfe_forward']:.0f}/{row['nfe_backward']:.0f}"}
                                                           if block is not None else {}))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        memory = {"peak_mib": (torch.cuda.max_memory_allocated() - before) / 2**20, "method": "cuda max_memory_allocated"}
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        memory = {"peak_mib": max(0, peak - before) / 1024,
                  "method": "peak RSS increase" + ("" if exact_peak else " (peak counter not resettable: an upper bound)")}

    model.eval()
    wrong = 0
    with torch.no_grad():
        for k in range(0, len(y_test), 500):
            wrong += int((model(x_test[k : k + 500].to(device)).argmax(1) != y_test[k : k + 500].to(device)).sum())
    model.train()
    rows = torch.arange(min(config["batch_size"], len(y_train)))
    activations = saved_activation_bytes(model, x_train[rows].to(device), y_train[rows].to(device))
    out = {"label": MODELS[name], "test_error": 100.0 * wrong / len(y_test), "test_wrong": wrong,
           "n_test": len(y_test), "parameters": parameters,
           "train_seconds": seconds, "steps": len(history) * steps_per_epoch, "peak_memory_mib": memory["peak_mib"],
           "memory_method": memory["method"], "saved_activations_mib": activations / 2**20, "history": history,
           "device": device.type}
    if block is not None:
        out |= {"nfe_forward": float(np.mean(nfe_f)), "nfe_backward": float(np.mean(nfe_b)),
                "nfe_forward_last_epoch": history[-1]["nfe_forward"], "nfe_backward_last_epoch": history[-1]["nfe_backward"]}
        if name == "ode_net":
            out["residual_parameters"] = sum(p.numel() for p in block.parameters())
    elif name == "resnet":
        out["residual_parameters"] = sum(p.numel() for p in model.features.parameters())
    return out


# ---------------------------------------------------------------------------------------------- report

def table(results: dict, batch_size: int) -> str:
    lines = ["| model | test error (%) | parameters | peak training memory (MiB) | activations kept for backward "
             f"(MiB, batch {batch_size}) | NFE forward / backward per step | training time (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in results.values():
        nfe = f"{r['nfe_forward']:.1f} / {r['nfe_backward']:.1f}" if "nfe_forward" in r else "-"
        lines.append(f"| {r['label']} | {r['test_error']:.2f} ({r['test_wrong']}/{r['n_test']}) | {r['parameters']:,} | "
                     f"{r['peak_memory_mib']:.1f} | {r['saved_activations_mib']:.2f} | {nfe} | {r['train_seconds']:.1f} |")
    return "\n".join(lines)


def paper_table(results: dict) -> str:
    lines = ["| model | paper: test error (%) | paper: parameters | paper: memory | here: test error (%) | here: parameters |",
             "|---|---|---|---|---|---|"]
    for key, r in results.items():
        p = PAPER[key]
        lines.append(f"| {r['label']} | {p['test_error']:.2f} | {p['parameters']} | {p['memory']} | {r['test_error']:.2f} | "
                     f"{r['parameters'] / 1e6:.3f}M |")
    return "\n".join(lines)


def figure(results: dict, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    labels = [r["label"] for r in results.values()]
    colors = [f"C{i}" for i in range(len(labels))]
    bars = [("test error (%)", "test_error"), ("parameters", "parameters"),
            ("activations kept for backward (MiB)", "saved_activations_mib")]
    for ax, (ylabel, key) in zip(axes[:3], bars, strict=True):
        values = [r[key] for r in results.values()]
        ax.bar(labels, values, color=colors)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:,.2f}" if isinstance(v, float) else f"{v:,}", ha="center", va="bottom", fontsize=8)
        ax.set(ylabel=ylabel)
        ax.tick_params(axis="x", labelrotation=20)
    ax = axes[3]
    for r, color in zip(results.values(), colors, strict=True):
        if "nfe_forward" in r:
            epochs = [h["epoch"] for h in r["history"]]
            ax.plot(epochs, [h["nfe_forward"] for h in r["history"]], color=color, label=f"{r['label']} forward")
            if r["nfe_backward"] > 0:
                ax.plot(epochs, [h["nfe_backward"] for h in r["history"]], color=color, ls="--", label=f"{r['label']} backward")
    ax.set(xlabel="epoch", ylabel="NFE per training step (mean over the epoch)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    parser = experiment_parser(__doc__, "a small run for the tests (16 channels, 3 epochs, batch 32 on digits; under a minute)")
    parser.add_argument("--mnist", type=Path, default=None, help="folder of the MNIST IDX files (default: sklearn's 8x8 digits)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and the batch order")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="which models to train")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: 3 quick, 30 digits, 8 MNIST)")
    parser.add_argument("--channels", type=int, default=None, help="conv channels C (default: 16 quick, 32 digits, 64 MNIST)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 quick, 64 digits, 128 MNIST")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's initial learning rate (cosine decay to 0)")
    parser.add_argument("--rk-step", type=float, default=0.25, help="the RK-Net's rk4 step on t in [0, 1]")
    parser.add_argument("--tol", type=float, default=1e-3, help="the ODE-Net's dopri5 rtol = atol")
    parser.add_argument("--limit", type=int, default=None, help="train on at most this many images (test on half as many)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each training process")
    args = parser.parse_args(argv)
    for name in ("epochs", "channels", "batch_size", "limit", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.mnist is not None:
        try:
            load_mnist(args.mnist)  # fail here, with the file's name, before any training process starts
        except (FileNotFoundError, ValueError) as exc:
            parser.error(str(exc))
    mnist = args.mnist is not None
    epochs = args.epochs or (3 if args.quick else 8 if mnist else 30)
    channels = args.channels or (16 if args.quick else 64 if mnist else 32)
    batch_size = args.batch_size or (32 if args.quick else 128 if mnist else 64)
    limit = args.limit or (2000 if args.quick and mnist else None)
    config = {"seed": args.seed, "mnist": None if args.mnist is None else str(args.mnist), "limit": limit, "epochs": epochs,
              "channels": channels, "batch_size": batch_size, "lr": args.lr, "rk_step": args.rk_step, "tol": args.tol,
              "threads": args.threads, "quiet": args.quick}
    _, y_train, _, y_test, data_name = load_data(config["mnist"], args.seed, limit)

    results = {}
    context = multiprocessing.get_context("spawn")
    for name in args.models:
        print(f"training {MODELS[name]} in a fresh process ...", flush=True)
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            results[name] = pool.submit(train_one, {**config, "model": name}).result()
        r = results[name]
        print(f"  {r['label']}: test error {r['test_error']:.2f}%, {r['parameters']:,} parameters, "
              f"{r['train_seconds']:.1f} s", flush=True)

    device = next(iter(results.values()))["device"]
    memory_note = ("peak `torch.cuda.max_memory_allocated` during training, over the allocation before it" if device == "cuda"
                   else "peak RSS during the training loop over the RSS just before it, each model in a fresh process")
    lines = [
        f"{data_name}: {len(y_train)} training and {len(y_test)} test images (seed {args.seed}); {epochs} epochs of Adam "
        f"(lr {args.lr:g}, cosine decay, batch {batch_size}); C = {channels} channels; ODE-Net: dopri5, adjoint, "
        f"rtol = atol = {args.tol:g}; RK-Net: rk4, step {args.rk_step:g} on [0, 1], backprop through the solver; "
        f"device {device}, {args.threads} torch threads per process.",
        "",
        table(results, batch_size),
        "",
        f"Memory: {memory_note}. Activations: the bytes of the distinct non-parameter tensors that one training forward "
        f"pass of a batch of {batch_size} keeps for the backward pass (exact, allocator-independent; the adjoint's "
        "backward solve then needs about one field evaluation's worth more, not counted here). NFE: field evaluations "
        "per training step, mean over training. The MLP's row shows the part of the RSS increase that does not depend "
        f"on the model (first-use allocations of the autograd engine, optimiser and kernels). One test image is "
        f"{100 / len(y_test):.2f} percentage points of test error.",
        "",
        "Beside Chen et al. (2018), Table 1 (MNIST, 28x28, 64 channels, 10k test images):",
        "",
        paper_table(results),
    ]
    if "resnet" in results and "ode_net" in results:
        res, ode = results["resnet"], results["ode_net"]
        lines += ["", f"Parameters, ODE-Net / ResNet: {ode['parameters'] / res['parameters']:.2f} overall (paper 0.22M / 0.60M "
                  f"= 0.37), {ode['residual_parameters'] / res['residual_parameters']:.2f} in the residual part (one f "
                  "instead of six)."]
    report = "\n".join(lines)
    print()
    print(report)
    raw = {"data": data_name, "n_train": len(y_train), "n_test": len(y_test), "config": config, "models": results,
           "paper": PAPER}
    fig = figure(results, f"Chen et al. (2018) Table 1 at small scale: {data_name}, {epochs} epochs, seed {args.seed}")
    suffix = ("_mnist" if mnist else "") + ("_quick" if args.quick else "")
    write_outputs(args, f"paper_classification{suffix}", "Neural ODE paper, Table 1 (classification) at small scale",
                  report, raw, fig)


if __name__ == "__main__":
    main()
