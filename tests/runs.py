"""What the tests of interrupted and resumed training share: two run folders that must hold the same run."""

import torch

from physode.train import read_metrics


def assert_same_run(reference, resumed) -> None:
    """``model.pt`` in both folders holds the same weights bit for bit, and ``metrics.jsonl`` the same records
    (their wall-clock ``seconds`` aside)."""
    a = torch.load(reference / "model.pt", weights_only=True)["model"]["state_dict"]
    b = torch.load(resumed / "model.pt", weights_only=True)["model"]["state_dict"]
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name

    def records(folder):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(folder / "metrics.jsonl")]

    assert records(reference) == records(resumed)
