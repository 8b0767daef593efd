"""The interaction model: its symmetries to float rounding, conservation laws, and gravity learned from three bodies
rolled out for four and five."""

import math

import pytest
import torch

import physode
from physode import TrajectoryDataset
from physode.collocation import fit_field
from physode.derivatives import estimate_derivatives
from physode.models.interaction import InteractionODE


def _random_states(n_bodies, dim, count=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 2 * n_bodies * dim, generator=generator, dtype=torch.float64)


def _bodies(x, n, dim):
    half = n * dim
    return x[..., :half].unflatten(-1, (n, dim)), x[..., half:].unflatten(-1, (n, dim))


def _state(q, v):
    return torch.cat([q.flatten(-2), v.flatten(-2)], dim=-1)


@pytest.mark.parametrize("hamiltonian", [False, True], ids=["forces", "hamiltonian"])
def test_the_field_is_translation_rotation_and_permutation_symmetric(hamiltonian):
    torch.manual_seed(0)
    n, dim = 4, 3
    model = InteractionODE(n, dim, hamiltonian=hamiltonian, dtype="float64")
    torch.nn.init.normal_(model.net[-1].weight)  # a nonzero network, so that it takes part
    x = _random_states(n, dim)
    q, v = _bodies(x, n, dim)
    field = model.vector_field(0.0, x)
    dq, dv = _bodies(field, n, dim)
    assert torch.allclose(dq, v)  # positions change at the velocities
    shifted = model.vector_field(0.0, _state(q + torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64), v))
    assert torch.allclose(shifted, field, rtol=1e-12, atol=1e-12)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    turned = model.vector_field(0.0, _state(q @ rotation.T, v @ rotation.T))
    assert torch.allclose(_bodies(turned, n, dim)[1], dv @ rotation.T, rtol=1e-10, atol=1e-12)
    order = torch.tensor([2, 0, 3, 1])
    permuted = model.vector_field(0.0, _state(q[:, order], v[:, order]))
    assert torch.allclose(_bodies(permuted, n, dim)[1], dv[:, order], rtol=1e-12, atol=1e-12)
    # Newton's third law: the total force vanishes, so the total momentum is conserved
    assert float(dv.sum(1).abs().max()) < 1e-12 * float(dv.detach().abs().max())


def test_the_hamiltonian_form_conserves_its_energy_and_the_momentum_along_a_rollout():
    torch.manual_seed(0)
    model = InteractionODE(3, 2, hamiltonian=True, dtype="float64", solver="dopri8", rtol=1e-11, atol=1e-11)
    torch.nn.init.normal_(model.net[-1].weight, std=0.3)
    x0 = physode.NBody(n_bodies=3, dim=2).sample_initial_states(4, seed=0)
    path = model.rollout(x0, torch.linspace(0, 3, 31, dtype=torch.float64))
    energy = model.energy(path)
    assert float((energy - energy[:, :1]).abs().max()) < 1e-8 * float(energy.abs().max())
    momentum = _bodies(path, 3, 2)[1].sum(-2)
    assert float((momentum - momentum[:, :1]).abs().max()) < 1e-9


def test_gravity_learned_from_three_bodies_rolls_out_four_and_five_without_retraining():
    data = TrajectoryDataset.generate(physode.NBody(n_bodies=3, dim=2), 128, 10.0, 0.1, seed=0)
    torch.manual_seed(0)
    model = InteractionODE(3, 2, dtype="float64")
    fit_field(model, estimate_derivatives(data), steps=1500, lr=1e-2)
    assert model.power.item() == pytest.approx(-2.0, abs=0.02)  # the inverse-square law, found
    for n in (4, 5):
        system = physode.NBody(n_bodies=n, dim=2)
        bigger = model.with_bodies(n)
        x0 = system.sample_initial_states(8, seed=3)
        with torch.no_grad():
            field = bigger.vector_field(0.0, x0)
        truth = system.vector_field(0.0, x0)
        assert float((field - truth).norm() / truth.norm()) < 1e-2, n
        t = torch.linspace(0, 2.0, 21, dtype=torch.float64)
        error = (bigger.rollout(x0, t) - system.rollout(x0, t)).norm(dim=-1) / system.rollout(x0, t).norm(dim=-1)
        assert float(error[:, -1].median()) < 5e-2, n


def test_the_interaction_model_refuses_what_is_not_a_particle_state():
    with pytest.raises(physode.PhysodeError, match="n_bodies must be a whole number >= 2"):
        InteractionODE(1, 2)
    model = InteractionODE(2, 2)
    with pytest.raises(physode.PhysodeError, match="last dimension 8"):
        model.vector_field(0.0, torch.zeros(3, 6))
    assert math.isfinite(float(model.vector_field(0.0, torch.randn(3, 8)).abs().max()))
