"""The multilayer perceptron behind every learned vector field, step map and Hamiltonian."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import positive_int
from ..errors import unknown_name

ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU}


class MLP(nn.Sequential):
    """``in_dim -> hidden -> ... -> out_dim`` with ``depth`` hidden layers of width ``hidden``.

    Smooth activations (``tanh``, the default, ``softplus``, ``silu``, ``elu``) keep the learned ODE
    non-stiff; ``relu`` is offered for ResNet step maps. The last layer starts at zero, so a fresh
    model is the zero field (a neural ODE then starts as the identity flow).

    A ``tanh`` network on the CPU with no gradient being recorded (stepping envs, evaluation,
    validation) is computed in its sigmoid form (:meth:`sigmoid_form`): torch's CPU ``tanh`` kernel is
    scalar in current builds (torch 2.13, this project's 2-core machine: 87 us for 1024 x 64 float32
    values, against 15 us for the vectorised ``sigmoid``). Where gradients flow (training) and on GPUs
    it is ``torch.tanh`` itself, whose fused backward is faster at training batch sizes.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2, activation: str = "tanh"):
        in_dim, out_dim = positive_int(in_dim, "in_dim"), positive_int(out_dim, "out_dim")
        hidden, depth = positive_int(hidden, "hidden"), positive_int(depth, "depth")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise unknown_name("activation", activation, ACTIVATIONS)
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        last = nn.Linear(width, out_dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(*layers, last)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network at ``x: (..., in_dim)``; with an ensemble's stacked weights in place of its own (``(K, out,
        in)`` matrices and ``(K, 1, out)`` biases, through ``torch.func.functional_call``), every member's network at
        its own inputs ``x: (K, M, in_dim)`` in one batched multiplication per layer: ``(K, M, out_dim)``."""
        if self[0].weight.ndim == 3:
            for layer in self:
                linear = isinstance(layer, nn.Linear)
                x = torch.baddbmm(layer.bias, x, layer.weight.transpose(1, 2)) if linear else layer(x)
            return x
        if self.activation == "tanh" and x.device.type == "cpu" and not torch.is_grad_enabled():
            return self.sigmoid_form()(x)
        return super().forward(x)

    def sigmoid_form(self, shift=None, scale=None, out_scale=None) -> SigmoidForm:
        """This ``tanh`` network as a :class:`SigmoidForm` (with the maps given), for evaluations without gradients.

        It is kept between calls with a copy of the weights and maps it was folded from, and refolded whenever
        any of them differs (an optimiser step, ``load_state_dict``, an edit through ``.data``, other maps):
        comparing takes a few microseconds, folding tens, and a rollout evaluates the same weights many times.
        """
        made_from = [*self.parameters(), shift, scale, out_scale]
        kept = self.__dict__.get("_sigmoid_form")
        if kept is None or not _equal_tensors(kept[0], made_from):
            kept = self._sigmoid_form = ([None if w is None else w.detach().clone() for w in made_from],
                                         SigmoidForm(self, shift, scale, out_scale))
        return kept[1]

    def _apply(self, fn, *args, **kwargs):  # moved or cast: the folded copies are dropped, not carried along
        self.__dict__.pop("_sigmoid_form", None)
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self):  # pickled or deep-copied without the folded copies (refolded when next needed)
        state = super().__getstate__()
        state.pop("_sigmoid_form", None)
        return state


def _equal_tensors(these, those) -> bool:
    """Whether two lists hold equal tensors (or None) place by place."""
    return len(these) == len(those) and all(
        (a is None and b is None) or (a is not None and b is not None and a.dtype == b.dtype and torch.equal(a, b))
        for a, b in zip(these, those, strict=True))


class SigmoidForm:
    """A ``tanh`` :class:`MLP`'s function from ``tanh(z) = 2 sigmoid(2z) - 1``, its weights folded once.

    Each hidden layer keeps ``s = sigmoid(2z)`` (so its output is ``2s - 1``); the next layer's
    ``W (2s - 1) + b`` is then ``2 W s + (b - W 1)``, and the factor 2 of the next sigmoid's argument
    joins the same matrix: every layer is one ``addmm`` and one in-place sigmoid, against four
    element-wise passes for ``2 sigmoid(2z) - 1`` written out. Optionally an input map
    ``(x - shift) / scale`` of the first ``len(scale)`` inputs and a scale ``out_scale`` of the first
    ``len(out_scale)`` outputs are folded into the first and last layers (a model's normalisation), so an evaluation is those
    ``addmm`` and sigmoids alone. It agrees with the ``torch.tanh`` network to float rounding (tested
    in float32 and float64).

    The folded weights are copies: build one for a run of evaluations with fixed weights (a solve
    without gradients), not across training steps. Folding the shift trades a little accuracy where
    ``|shift| / scale`` is large (``(W / s) x - (W / s) m`` cancels): about 1e-11 relative in float64
    at a shift of 1000 and scale of 0.01, far below any solver tolerance. :meth:`first_layer_bias`
    folds inputs that stay constant over many evaluations (a control held over a step) into the first
    layer's bias.
    """

    def __init__(self, mlp: MLP, shift=None, scale=None, out_scale=None):
        with torch.no_grad():
            linears = list(mlp)[::2]
            first, last = linears[0], linears[-1]
            weight, bias = first.weight, first.bias
            if scale is not None:
                k = scale.shape[0]
                scaled = weight[:, :k] / scale
                weight, bias = torch.cat([scaled, weight[:, k:]], dim=1), bias - scaled @ shift
            self.first_bias, self.first_weight = 2 * bias, 2 * weight.t()
            self.hidden = [(2 * (layer.bias - layer.weight.sum(1)), 4 * layer.weight.t()) for layer in linears[1:-1]]
            weight, bias = 2 * last.weight, last.bias - last.weight.sum(1)
            if out_scale is not None:
                k = out_scale.shape[0]
                weight = torch.cat([weight[:k] * out_scale[:, None], weight[k:]])
                bias = torch.cat([bias[:k] * out_scale, bias[k:]])
            self.last_bias, self.last_weight = bias, weight.t()

    def first_layer_bias(self, inputs: torch.Tensor, start: int) -> torch.Tensor:
        """The first layer's bias with the inputs from index ``start`` on fixed at ``inputs: (N, k)``: ``(N, hidden)``.

        Pass it as ``bias`` with the inputs before ``start`` alone, to save their share for every evaluation.
        """
        return torch.addmm(self.first_bias, inputs, self.first_weight[start : start + inputs.shape[-1]])

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The network at ``x: (..., in_dim)``; with ``bias`` from :meth:`first_layer_bias`, ``x`` holds only the
        inputs before its ``start``."""
        weight = self.first_weight if bias is None else self.first_weight[: x.shape[-1]]
        rows = x.reshape(-1, x.shape[-1])
        s = torch.addmm(self.first_bias if bias is None else bias, rows, weight).sigmoid_()
        for hidden_bias, hidden_weight in self.hidden:
            s = torch.addmm(hidden_bias, s, hidden_weight).sigmoid_()
        out = torch.addmm(self.last_bias, s, self.last_weight)
        return out.reshape(*x.shape[:-1], out.shape[-1])
