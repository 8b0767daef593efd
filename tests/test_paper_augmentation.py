"""Augmented neural ODEs (experiments/paper_augmentation.py): a 1-D ODE flow cannot reorder points, so it cannot
learn the crossing map g(1) = -1, g(-1) = 1, while an augmented flow and a ResNet can."""

import json

import pytest
import torch
from torch import nn

from physode import ODEBlock

from experiment import run


class TimeMLP(nn.Module):
    """A time-dependent field on [z, t] with large random weights (a strongly nonlinear flow)."""

    def __init__(self, hidden=16, scale=3.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        with torch.no_grad():
            for p in self.net.parameters():
                p.mul_(scale)

    def forward(self, t, z):
        return self.net(torch.cat([z, t.to(z).expand(z.shape[0], 1)], dim=1))


@pytest.mark.parametrize("seed", range(5))
def test_a_plain_1d_flow_preserves_the_order_of_points(seed):
    torch.manual_seed(seed)
    block = ODEBlock(TimeMLP().double(), t_end=1.0, rtol=1e-9, atol=1e-9, adjoint=False)
    x = torch.linspace(-2.0, 2.0, 41, dtype=torch.float64).reshape(-1, 1)
    with torch.no_grad():
        out = block(x).flatten()
    assert (out - x.flatten()).abs().max() > 0.1  # the flow really moves the points
    # Trajectories of an ODE cannot cross: the images stay sorted (they may bunch up, hence the round-off slack).
    assert out.diff().min() > -1e-9
    # and so the crossing map's MSE of any 1-D flow is >= 1: with a = phi(1) >= b = phi(-1),
    # ((a + 1)^2 + (b - 1)^2) / 2 >= 1 (minimum at a = b = 0).
    a, b = block(torch.tensor([[1.0], [-1.0]], dtype=torch.float64)).detach().flatten()
    assert a >= b and ((a + 1) ** 2 + (b - 1) ** 2) / 2 >= 1.0


@pytest.mark.slow
def test_paper_augmentation_quick(tmp_path):
    out = run("paper_augmentation.py", "--results", str(tmp_path), "--figures", str(tmp_path))
    raw = json.loads((tmp_path / "paper_augmentation_quick.json").read_text())
    assert "| crossing | neural ODE |" in out and "| annulus | augmented ODE |" in out
    cross, ring = raw["crossing"], raw["annulus"]
    # The plain flow cannot do better than MSE 1. With the training solver (dopri5, rtol = atol = 1e-3) its final
    # states are off by ~1e-3, so the MSE may dip a hair below 1 (1 - 2e-4 seen); 0.9 is far outside that slack
    # and far above what a model that actually crosses reaches. Under the tight solver the bound is ~exact.
    assert cross["neural ODE"]["mse"] >= 0.9
    assert cross["neural ODE"]["mse_tight_solver"] >= 0.99
    a, b = cross["neural ODE"]["prediction_tight_solver"]
    assert a >= b - 1e-4  # g(1) >= g(-1): the order is kept
    for name in ("augmented ODE", "ResNet"):
        assert cross[name]["mse"] < 0.05, name
    assert cross["augmented ODE"]["mse_tight_solver"] < 0.05  # the crossing is not a solver artefact
    for name, row in ring.items():
        assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["train_accuracy"] <= 1.0, name
        assert len(row["curve"]["loss"]) == row["iterations"] > 0
    for name in ("neural ODE", "augmented ODE"):
        curve = ring[name]["curve"]
        # dopri5 takes >= 1 step of 6 evaluations (+ the initial one); the adjoint solve evaluates the field too
        assert min(curve["nfe_forward"]) >= 7 and min(curve["nfe_backward"]) > 0, name
    assert sum(ring["ResNet"]["curve"]["nfe_forward"]) == 0
    for figure in ("paper_augmentation_crossing_quick", "paper_augmentation_annulus_quick"):
        assert (tmp_path / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "paper_augmentation_quick.md").read_text().startswith("# Augmented neural ODEs")
