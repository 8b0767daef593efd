"""ODEBlock: the exact flow of a linear field, adjoint gradients against direct backprop and finite
differences, NFE counts, augmentation, bad arguments."""

import pytest
import torch
from torch import nn

from physode import ODEBlock, PhysodeError, SolverError


class Linear(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, t, z):
        return z @ self.a.T


class MLPField(nn.Module):
    def __init__(self, dim, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, t, z):
        return self.net(z)


def test_a_linear_block_is_the_matrix_exponential():
    a = torch.tensor([[0.0, 1.0], [-2.0, -0.3]], dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    block = ODEBlock(Linear(a), t_end=1.5, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(block(x), x @ torch.linalg.matrix_exp(1.5 * a).T, rtol=1e-8, atol=1e-8)
    rk = ODEBlock(Linear(a), t_end=1.5, solver="rk4", step_size=0.01, adjoint=False)
    torch.testing.assert_close(rk(x), x @ torch.linalg.matrix_exp(1.5 * a).T, rtol=1e-7, atol=1e-7)
    assert rk.nfe_forward == 4 * 150  # rk4 (3/8 rule): four evaluations per step


def test_a_fixed_step_trajectory_steps_onto_every_output_time():
    """Against the matrix exponential at 0.35 and 1.0 with rk4 steps of at most 0.1: every output is a step (not
    a linear interpolation between the steps around it, which was 1e-4 off at 0.35)."""
    a = torch.tensor([[0.0, 1.0], [-2.0, -0.3]], dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    block = ODEBlock(Linear(a), solver="rk4", step_size=0.1, adjoint=False)
    z = block.trajectory(x, [0.0, 0.35, 1.0])
    for k, t in enumerate((0.0, 0.35, 1.0)):
        torch.testing.assert_close(z[k], x @ torch.linalg.matrix_exp(t * a).T, rtol=0, atol=1e-5)
    assert block.nfe_forward == 4 * 2 * 7  # each interval in 7 equal substeps (0.65 / 0.1, rounded up)


def test_adjoint_gradients_match_direct_backprop_and_finite_differences():
    torch.manual_seed(0)
    field = MLPField(3).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    grads = []
    for adjoint in (True, False):
        block = ODEBlock(field, solver="dopri5", rtol=1e-10, atol=1e-10, adjoint=adjoint)
        field.zero_grad()
        block(x).pow(2).sum().backward()
        grads.append([p.grad.clone() for p in field.parameters()])
        assert (block.nfe_backward > 0) == adjoint  # the adjoint solves backwards, direct backprop does not
    for g_adjoint, g_direct in zip(*grads, strict=True):
        torch.testing.assert_close(g_adjoint, g_direct, rtol=1e-6, atol=1e-8)
    weight = next(field.parameters())
    block = ODEBlock(field, rtol=1e-10, atol=1e-10)
    h, (i, j) = 1e-6, (1, 2)
    with torch.no_grad():
        weight[i, j] += h
        up = block(x).pow(2).sum()
        weight[i, j] -= 2 * h
        down = block(x).pow(2).sum()
        weight[i, j] += h
    assert grads[0][0][i, j].item() == pytest.approx(((up - down) / (2 * h)).item(), rel=1e-5)


def test_augmentation_adds_zero_channels_that_the_flow_moves():
    block = ODEBlock(MLPField(3), augment_dim=2)
    x = torch.randn(6, 1)
    assert block.augment(x).shape == (6, 3) and block.augment(x)[:, 1:].abs().max() == 0
    images = torch.randn(2, 4, 5, 5)
    conv = ODEBlock(ConvField(6), augment_dim=2, solver="rk4", step_size=0.25)
    assert conv(images).shape == (2, 6, 5, 5)
    path = block.trajectory(x, torch.linspace(0, 1, 5))
    assert path.shape == (5, 6, 3) and torch.equal(path[0, :, :1], x)


class ConvField(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, t, z):
        return torch.tanh(self.conv(z))


def test_a_runaway_solve_stops_with_a_solver_error():
    stiff = Linear(torch.tensor([[-1e6]], dtype=torch.float64))
    with pytest.raises(SolverError, match="dopri5 solve failed.*max_steps"):
        ODEBlock(stiff, rtol=1e-8, atol=1e-8, max_steps=50)(torch.ones(2, 1, dtype=torch.float64))


def test_bad_blocks_are_refused():
    with pytest.raises(PhysodeError, match="nn.Module"):
        ODEBlock(lambda t, z: z)
    with pytest.raises(PhysodeError, match="step_size"):
        ODEBlock(MLPField(2), solver="rk4")
    with pytest.raises(PhysodeError, match="solver"):
        ODEBlock(MLPField(2), solver="rk45")
    with pytest.raises(PhysodeError, match="t_end"):
        ODEBlock(MLPField(2), t_end=0)
    with pytest.raises(PhysodeError, match="augment_dim"):
        ODEBlock(MLPField(2), augment_dim=1)(torch.zeros(3))


def test_fixed_step_adjoint_on_a_grid_of_several_times_matches_direct_backprop():
    """The adjoint's backward solve runs interval by interval; the fixed-step grid must follow each span."""
    from physode import NeuralODE

    torch.manual_seed(1)
    grads = []
    for adjoint in (True, False):
        torch.manual_seed(1)
        model = NeuralODE(2, solver="rk4", step_size=0.05, adjoint=adjoint, dtype="float64")
        nn.init.normal_(model.net[-1].weight, std=0.3)
        x0 = torch.randn(4, 2, dtype=torch.float64)
        model.rollout(x0, torch.linspace(0, 1, 6, dtype=torch.float64)).pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert ((grads[0] - grads[1]).norm() / grads[1].norm()).item() < 1e-6


def test_the_uniform_grid_behaves_like_the_tensor_it_replaces():
    from physode.integrate import SubstepGrid

    like = torch.zeros((), dtype=torch.float64)
    grid = SubstepGrid([0.0, 3.0], 6, like)
    dense = torch.linspace(0.0, 3.0, 7, dtype=torch.float64)
    assert len(grid) == 7 and torch.equal(torch.stack(list(grid)), dense)
    assert torch.equal(torch.stack(list(grid[:-1])), dense[:-1]) and torch.equal(torch.stack(list(grid[1:])), dense[1:])
    assert grid[-1].item() == 3.0 and grid[2].item() == 1.0 and (-grid)[-1].item() == -3.0
    with pytest.raises(IndexError):
        grid[7]
    knots = SubstepGrid([0.0, 1.0, 3.0], 2, like)  # each interval in 2 substeps, every knot a point exactly
    assert [v.item() for v in knots] == [0.0, 0.5, 1.0, 2.0, 3.0] and len(knots[1:]) == 4
    assert [v.item() for v in -knots][::2] == [-0.0, -1.0, -3.0] and knots[1:][0].item() == 0.5
