"""Checkpoints: round trips, and hostile or malformed files refused without running their code."""

import pytest
import torch

import physode
from physode import FileFormatError, load_model, save_checkpoint
from physode.checkpoint import load_checkpoint


class Payload:
    """A pickled object of a class: a safe (weights_only) load must refuse it."""

    def __reduce__(self):
        return (print, ("this ran code from a checkpoint",))


@pytest.mark.parametrize("model", [physode.NeuralODE(2, hidden=8), physode.AugmentedNeuralODE(2, augment_dim=1),
                                   physode.ResNetStep(4, dt=0.1, control_dim=2), physode.HamiltonianODE(2, dtype="float64")])
def test_round_trip_rebuilds_the_same_model(model, tmp_path):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    model.set_normalization(torch.arange(model.state_dim) * 1.0, torch.ones(model.state_dim) * 2.0)
    save_checkpoint(tmp_path / "m.pt", model, system_spec={"name": "pendulum", "params": {}})
    back = load_model(tmp_path / "m.pt")
    assert type(back) is type(model) and back.config() == model.config() and not back.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, back.state_dict()[key]), key


def test_hostile_and_malformed_checkpoints_are_refused(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "physode.checkpoint", "payload": Payload()}, evil)
    with pytest.raises(FileFormatError, match="safe load refuses"):
        load_model(evil)
    assert "this ran code" not in capsys.readouterr().out
    model = physode.NeuralODE(2)
    good = save_checkpoint(tmp_path / "good.pt", model)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    cases = {
        tmp_path / "missing.pt": "does not exist",
        truncated: "not a readable checkpoint",
        tmp_path / "text.pt": "not a readable checkpoint",
        tmp_path / "foreign.pt": "not a physode checkpoint",
        tmp_path / "future.pt": "version 7",
        tmp_path / "unknown.pt": "names no model",
        tmp_path / "badconfig.pt": "do not fit",
    }
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    payload = load_checkpoint(good)
    torch.save({**payload, "format_version": 7}, tmp_path / "future.pt")
    torch.save({**payload, "model": {**payload["model"], "class": "Transformer"}}, tmp_path / "unknown.pt")
    torch.save({**payload, "model": {**payload["model"], "config": {"state_dim": 3}}}, tmp_path / "badconfig.pt")
    for path, message in cases.items():
        with pytest.raises(FileFormatError, match=message):
            load_model(path)
    with pytest.raises(FileFormatError, match="not a ResNetStep"):
        load_model(good, expected=physode.ResNetStep)
