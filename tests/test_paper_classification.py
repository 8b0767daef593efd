"""experiments/paper_classification.py: the four models of Chen et al. (2018) Table 1 in --quick mode, and its IDX reader."""

import gzip
import json
import sys

import numpy as np
import pytest
from experiment import ROOT, launch

sys.path.insert(0, str(ROOT / "experiments"))

from paper_classification import load_mnist, read_idx  # noqa: E402


@pytest.mark.slow
def test_quick_run_reproduces_the_shape_of_table_1(tmp_path):
    done = launch("paper_classification.py", "--quick", "--results", str(tmp_path), "--figures", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    raw = json.loads((tmp_path / "paper_classification_quick.json").read_text())
    models = raw["models"]
    assert list(models) == ["mlp", "resnet", "rk_net", "ode_net"]
    for r in models.values():
        assert 0 <= r["test_error"] <= 100
        assert r["test_error"] < 60, r  # chance is 90%: even 3 epochs beat it by a clear margin
        assert r["parameters"] > 0 and r["train_seconds"] > 0 and r["peak_memory_mib"] >= 0
        assert f"| {r['label']} |" in done.stdout
    res, rk, ode = models["resnet"], models["rk_net"], models["ode_net"]
    # one f instead of six: the ODE and RK nets share the architecture and have the same (smaller) parameter count
    assert ode["parameters"] == rk["parameters"] < 0.5 * res["parameters"]
    assert 0.15 < ode["residual_parameters"] / res["residual_parameters"] < 0.2  # 1/6, plus the t-channel weights
    # the adjoint solves backwards (dopri5: at least 1 + 6 evaluations per solve); backprop through rk4 does not
    assert ode["nfe_forward"] >= 7 and ode["nfe_backward"] >= 7
    assert rk["nfe_forward"] == 16 and rk["nfe_backward"] == 0  # rk4 (4 evaluations per step), step 0.25 on [0, 1]
    assert "nfe_forward" not in res
    # memory kept for backward: O(1) for the adjoint, O(steps) for the RK-Net, O(blocks) for the ResNet
    assert ode["saved_activations_mib"] < res["saved_activations_mib"] < rk["saved_activations_mib"]
    assert (tmp_path / "paper_classification_quick.png").read_bytes()[:4] == b"\x89PNG"
    assert "| ODE-Net |" in (tmp_path / "paper_classification_quick.md").read_text()


def write_idx(path, array, code):
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)


def test_idx_files_read_back(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    floats = rng.normal(size=(3, 4)).astype(np.float32)
    write_idx(tmp_path / "train-images-idx3-ubyte", images, 0x08)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, 0x08)  # gzipped files are read too
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:2], 0x08)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:2], 0x08)
    write_idx(tmp_path / "floats.idx", floats, 0x0D)
    np.testing.assert_array_equal(read_idx(tmp_path / "floats.idx"), floats)
    data = load_mnist(tmp_path)
    np.testing.assert_array_equal(data["x_train"], images)
    np.testing.assert_array_equal(data["y_train"], labels)
    np.testing.assert_array_equal(data["x_test"], images[:2])
    np.testing.assert_array_equal(data["y_test"], labels[:2])
    assert data["x_train"].dtype == np.uint8 and data["x_train"].shape == (5, 28, 28)

    (tmp_path / "broken").write_bytes((tmp_path / "train-images-idx3-ubyte").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "broken")


def test_missing_mnist_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), 0x08)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    done = launch("paper_classification.py", "--mnist", str(tmp_path / "nowhere"), "--results", str(tmp_path),
                  "--figures", str(tmp_path))
    assert done.returncode == 2 and "nowhere" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
