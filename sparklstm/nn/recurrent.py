"""Stacked, optionally bidirectional LSTM and GRU layers with PyTorch's names and shapes.

``LSTM(input_size, hidden_size, num_layers, bidirectional)`` holds exactly the parameters of
``torch.nn.LSTM`` built with the same arguments (``weight_ih_l{k}`` ``(4H, I)``, ``weight_hh_l{k}``
``(4H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``_reverse`` for the backward direction; gates
``i, f, g, o``), so a ``state_dict`` moves between the two unchanged. ``peephole=True`` adds
``weight_peephole_l{k}`` ``(3, H)`` (rows ``p_i, p_f, p_o``), which torch has no equivalent for.
``GRU`` mirrors ``torch.nn.GRU`` (gates ``r, z, n``). ``CIFG`` is the coupled input-forget gate
LSTM (``f = 1 - i``), named like ``torch.nn.LSTM`` with three gate blocks ``i, g, o`` (no torch
equivalent). :func:`make_stack` builds any of them from a cell name (``lstm``, ``peephole``,
``gru``, ``cifg``).

Arrays are batch-first at this API (``[batch, time, features]``) with optional ``lengths``;
internally every layer works on the packed rows of :class:`~sparklstm.nn.packing.PackedLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sparklstm.nn.gru_kernel import gru_backward, gru_forward
from sparklstm.nn.init import gate_blocks
from sparklstm.nn.lstm_kernel import lstm_backward, lstm_forward
from sparklstm.nn.packing import PackedLayout
from sparklstm.validation import (
    as_float_sequences,
    check_lengths,
    check_positive_int,
    check_probability,
    resolve_dtype,
)

__all__ = ["LSTM", "GRU", "CIFG", "RecurrentStack", "StackCache", "STACK_CELLS", "make_stack"]


@dataclass(frozen=True, eq=False)
class StackCache:
    """Everything the backward pass of a stack needs (per layer, per direction)."""

    layout: PackedLayout
    kernel_caches: list[list[Any]]  # [layer][direction]
    dropout_masks: list[np.ndarray | None]  # mask applied to each layer's output (None: none)


class RecurrentStack:
    """Common machinery of :class:`LSTM`, :class:`CIFG` and :class:`GRU`; not used directly."""

    cell: ClassVar[str]
    num_gates: ClassVar[int]
    # Whether the state is (h, c) (LSTM, CIFG) or h alone (GRU).
    has_cell_state: ClassVar[bool]
    # Gates whose b_ih and b_hh only ever act as their sum (all of an LSTM's; GRU's r and z).
    summed_bias_gates: ClassVar[int]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        if not isinstance(bidirectional, bool):
            raise TypeError(f"bidirectional must be a bool, got {type(bidirectional).__name__}")
        self.bidirectional = bidirectional
        self.dropout = check_probability("dropout", dropout)
        self.bias = bool(bias)
        self.dtype = resolve_dtype(dtype)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.training = True
        self.params: dict[str, np.ndarray] = {}
        self._init_params()
        self.grads: dict[str, np.ndarray] = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._last_cache: StackCache | None = None

    # ------------------------------------------------------------ parameters
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.num_directions * self.hidden_size

    def _suffix(self, layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.output_size

    def _init_params(self) -> None:
        G, H = self.num_gates, self.hidden_size
        for layer in range(self.num_layers):
            in_size = self._layer_input_size(layer)
            for direction in range(self.num_directions):
                sfx = self._suffix(layer, direction)
                self.params[f"weight_ih{sfx}"] = gate_blocks(
                    self.rng, G, H, in_size, self.dtype, False
                )
                self.params[f"weight_hh{sfx}"] = gate_blocks(self.rng, G, H, H, self.dtype, True)
                if self.bias:
                    self.params[f"bias_ih{sfx}"] = self._initial_bias()
                    self.params[f"bias_hh{sfx}"] = np.zeros(G * H, dtype=self.dtype)
                self._init_extra(sfx)

    def _initial_bias(self) -> np.ndarray:
        return np.zeros(self.num_gates * self.hidden_size, dtype=self.dtype)

    def _init_extra(self, suffix: str) -> None:
        """Hook for parameters beyond torch's (peepholes)."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, keyed and shaped exactly as ``torch.nn.LSTM``/``GRU``'s."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Load parameters (NumPy arrays or anything ``np.asarray`` takes, e.g. CPU tensors)."""
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict mismatch: missing {missing or 'none'}, "
                f"unexpected {unexpected or 'none'}"
            )
        for key in self.params:
            if key not in state:
                continue
            value = np.asarray(state[key], dtype=self.dtype)
            if value.shape != self.params[key].shape:
                raise ValueError(
                    f"state_dict[{key!r}] has shape {value.shape}, "
                    f"expected {self.params[key].shape}"
                )
            if not np.isfinite(value).all():
                raise ValueError(f"state_dict[{key!r}] contains NaN or Inf")
            self.params[key][...] = value

    def num_parameters(self, effective: bool = False) -> int:
        """Number of scalars. ``effective=True`` counts ``b_ih + b_hh`` once where the two only
        ever act as their sum (every LSTM and CIFG gate, GRU's r and z), i.e. the one-bias count
        ``4((I+H)H + H)`` per LSTM direction-layer, ``3((I+H)H + H)`` per CIFG one."""
        total = sum(v.size for v in self.params.values())
        if effective and self.bias:
            shared = self.summed_bias_gates
            total -= self.num_layers * self.num_directions * shared * self.hidden_size
        return int(total)

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    # ------------------------------------------------------------- packed API
    def _kernel_forward(self, x, layer, direction, h0, c0, layout):
        raise NotImplementedError

    def _kernel_backward(self, d_hidden, d_h_n, d_c_n, cache, layer, direction, need_dx=True):
        raise NotImplementedError

    def forward_packed(
        self,
        x: np.ndarray,
        layout: PackedLayout,
        h0: np.ndarray | None = None,
        c0: np.ndarray | None = None,
        training: bool | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, StackCache]:
        """Forward over packed rows.

        Parameters
        ----------
        x : (N, input_size) packed rows.
        h0, c0 : (layers*directions, B, H) initial states in *sorted* batch order, or None.
        training : apply inter-layer dropout (default ``self.training``).
        rng : randomness for dropout (default ``self.rng``).

        Returns
        -------
        out : (N, directions*H) packed outputs of the last layer.
        h_n, c_n : (layers*directions, B, H) final states, sorted order (``c_n`` None for GRU).
        cache : :class:`StackCache`.
        """
        training = self.training if training is None else training
        rng = self.rng if rng is None else rng
        B, H = layout.batch_size, self.hidden_size
        num_states = self.num_layers * self.num_directions
        if h0 is None:
            h0 = np.zeros((num_states, B, H), dtype=self.dtype)
        if c0 is None and self.has_cell_state:
            c0 = np.zeros((num_states, B, H), dtype=self.dtype)
        h_n, c_n, caches, masks = [], [], [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs, layer_caches = [], []
            for direction in range(self.num_directions):
                s = layer * self.num_directions + direction
                out, hn, cn, cache = self._kernel_forward(
                    layer_input, layer, direction, h0[s], None if c0 is None else c0[s], layout
                )
                outs.append(out)
                layer_caches.append(cache)
                h_n.append(hn)
                c_n.append(cn)
            layer_out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)
            mask = None
            if training and self.dropout > 0 and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = (rng.random(layer_out.shape) < keep).astype(self.dtype) / self.dtype.type(
                    keep
                )
                layer_out = layer_out * mask
            caches.append(layer_caches)
            masks.append(mask)
            layer_input = layer_out
        h_n_arr = np.stack(h_n)
        c_n_arr = np.stack(c_n) if self.has_cell_state else None
        return layer_input, h_n_arr, c_n_arr, StackCache(layout, caches, masks)

    def backward_packed(
        self,
        d_out: np.ndarray | None,
        cache: StackCache,
        d_h_n: np.ndarray | None = None,
        d_c_n: np.ndarray | None = None,
        need_input_grad: bool = True,
    ) -> tuple[np.ndarray | None, dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
        """BPTT over the whole stack.

        Returns ``(dx, grads, dh0, dc0)``: ``dx`` (N, input_size; None when
        ``need_input_grad`` is false: the first layer then skips that GEMM), ``grads`` keyed
        like :attr:`params` (freshly allocated), and gradients w.r.t. the initial states
        (sorted order; ``dc0`` None for GRU).
        """
        D, H = self.num_directions, self.hidden_size
        grads: dict[str, np.ndarray] = {}
        dh0 = [None] * (self.num_layers * D)
        dc0 = [None] * (self.num_layers * D)
        d_layer_out = d_out
        for layer in range(self.num_layers - 1, -1, -1):
            mask = cache.dropout_masks[layer]
            if mask is not None and d_layer_out is not None:
                d_layer_out = d_layer_out * mask
            d_input = None
            for direction in range(D):
                s = layer * D + direction
                d_hidden = None
                if d_layer_out is not None:
                    d_hidden = d_layer_out[:, direction * H : (direction + 1) * H]
                dx, g, dh, dc = self._kernel_backward(
                    d_hidden,
                    None if d_h_n is None else d_h_n[s],
                    None if d_c_n is None else d_c_n[s],
                    cache.kernel_caches[layer][direction],
                    layer,
                    direction,
                    need_input_grad or layer > 0,
                )
                if dx is not None:
                    d_input = dx if d_input is None else d_input + dx
                dh0[s], dc0[s] = dh, dc
                for key, value in g.items():
                    grads[key] = value
            d_layer_out = d_input
        grads = {k: grads[k] for k in self.params}
        dc0_arr = np.stack(dc0) if self.has_cell_state else None
        return d_layer_out, grads, np.stack(dh0), dc0_arr

    # ---------------------------------------------------- batch-first API
    def forward(
        self,
        x: np.ndarray,
        lengths: np.ndarray | None = None,
        state: Any = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Run the stack on a padded batch.

        Parameters
        ----------
        x : (batch, time, input_size) array.
        lengths : (batch,) valid lengths (default: all ``time``). Padded steps produce zeros,
            change no state and receive no gradient.
        state : initial state, ``(h0, c0)`` for LSTM and CIFG or ``h0`` for GRU, each
            ``(layers*directions, batch, hidden)``; default zeros.
        rng : generator for dropout (default the layer's own).

        Returns
        -------
        out : (batch, time, directions*hidden), zero at padded steps.
        state : ``(h_n, c_n)`` for LSTM and CIFG, ``h_n`` for GRU; the state after each sequence's
            last valid step (forward direction) or after its first step (reverse direction).

        Examples
        --------
        >>> import numpy as np
        >>> from sparklstm.nn import LSTM
        >>> lstm = LSTM(3, 5, num_layers=2, rng=0)
        >>> out, (h_n, c_n) = lstm.forward(np.ones((4, 7, 3), np.float32), lengths=[7, 2, 5, 1])
        >>> out.shape, h_n.shape
        ((4, 7, 5), (2, 4, 5))
        """
        x = as_float_sequences(x, "x", self.input_size, self.dtype)
        B, T = x.shape[:2]
        lengths_arr = check_lengths(lengths, B, T)
        layout = PackedLayout.from_lengths(lengths_arr, T)
        h0, c0 = self._split_state(state, B)
        order = layout.order
        h0s = None if h0 is None else h0[:, order]
        c0s = None if c0 is None else c0[:, order]
        out, h_n, c_n, cache = self.forward_packed(layout.pack(x), layout, h0s, c0s, rng=rng)
        self._last_cache = cache
        inv = layout.inverse_order
        h_n = h_n[:, inv]
        state_out = (h_n, c_n[:, inv]) if self.has_cell_state else h_n
        return layout.unpack(out), state_out

    def backward(self, d_out: np.ndarray | None, d_state: Any = None) -> np.ndarray:
        """Backpropagate through the last :meth:`forward`; fills :attr:`grads`, returns ``dx``.

        ``d_out`` is (batch, time, directions*hidden) (values at padded steps are ignored);
        ``d_state`` matches the returned state (``(dh_n, dc_n)`` or ``dh_n``), either may be
        None. The gradients w.r.t. the initial states are kept in :attr:`state_grads`.
        """
        if self._last_cache is None:
            raise RuntimeError("backward() called before forward()")
        cache = self._last_cache
        layout = cache.layout
        d_out_packed = None
        if d_out is not None:
            d_out = np.asarray(d_out, dtype=self.dtype)
            expected = (layout.batch_size, layout.max_len, self.output_size)
            if d_out.shape != expected:
                raise ValueError(f"d_out must have shape {expected}, got {d_out.shape}")
            d_out_packed = layout.pack(d_out)
        d_h_n, d_c_n = self._split_state(d_state, layout.batch_size, name="d_state")
        order = layout.order
        dx, grads, dh0, dc0 = self.backward_packed(
            d_out_packed,
            cache,
            None if d_h_n is None else d_h_n[:, order],
            None if d_c_n is None else d_c_n[:, order],
        )
        for key, value in grads.items():
            self.grads[key][...] = value
        inv = layout.inverse_order
        self.state_grads = (dh0[:, inv], dc0[:, inv]) if self.has_cell_state else dh0[:, inv]
        return layout.unpack(dx)

    def _split_state(self, state: Any, batch: int, name: str = "state"):
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if state is None:
            return None, None
        if self.has_cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{name} must be a tuple (h, c) for {type(self).__name__}")
            h, c = state
        else:
            h, c = state, None
        arrays = []
        for part, value in (("h", h), ("c", c)):
            if value is None:
                arrays.append(None)
                continue
            value = np.asarray(value, dtype=self.dtype)
            if value.shape != shape:
                raise ValueError(f"{name} ({part}) must have shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{name} ({part}) contains NaN or Inf")
            arrays.append(value)
        return arrays[0], arrays[1]


class LSTM(RecurrentStack):
    """Multi-layer LSTM, optionally bidirectional and with peephole connections.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bidirectional, dropout, bias
        As ``torch.nn.LSTM`` (``dropout`` is applied to every layer's output but the last,
        in training mode only).
    peephole : bool
        Gers & Schmidhuber (2000) peephole connections: the input and forget gates see
        ``c_{t-1}``, the output gate sees ``c_t``, through diagonal weights
        ``weight_peephole_l{k}`` of shape ``(3, H)`` (initialised to zero).
    forget_bias : float
        Initial forget-gate bias (put in ``bias_ih``; default 1.0, so gates start open).
    dtype : float32 (default) or float64.
    rng : ``numpy.random.Generator`` or seed, for initialisation and dropout.
    """

    cell = "lstm"
    num_gates = 4
    has_cell_state = True
    summed_bias_gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
        peephole: bool = False,
        forget_bias: float = 1.0,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.peephole = bool(peephole)
        self.forget_bias = float(forget_bias)
        super().__init__(
            input_size, hidden_size, num_layers, bidirectional, dropout, bias, dtype, rng
        )

    def _initial_bias(self) -> np.ndarray:
        bias = np.zeros(4 * self.hidden_size, dtype=self.dtype)
        bias[self.hidden_size : 2 * self.hidden_size] = self.forget_bias
        return bias

    def _init_extra(self, suffix: str) -> None:
        if self.peephole:
            self.params[f"weight_peephole{suffix}"] = np.zeros((3, self.hidden_size), self.dtype)

    def _kernel_forward(self, x, layer, direction, h0, c0, layout):
        sfx = self._suffix(layer, direction)
        p = self.params
        bias = p[f"bias_ih{sfx}"] + p[f"bias_hh{sfx}"] if self.bias else None
        peep = p[f"weight_peephole{sfx}"] if self.peephole else None
        return lstm_forward(
            x,
            p[f"weight_ih{sfx}"],
            p[f"weight_hh{sfx}"],
            bias,
            peep,
            h0,
            c0,
            layout,
            direction == 1,
        )

    def _kernel_backward(self, d_hidden, d_h_n, d_c_n, cache, layer, direction, need_dx=True):
        sfx = self._suffix(layer, direction)
        dx, g, dh0, dc0 = lstm_backward(d_hidden, d_h_n, d_c_n, cache, need_dx)
        grads = {f"weight_ih{sfx}": g["w_ih"], f"weight_hh{sfx}": g["w_hh"]}
        if self.bias:
            grads[f"bias_ih{sfx}"] = g["bias"]
            grads[f"bias_hh{sfx}"] = g["bias"].copy()
        if self.peephole:
            grads[f"weight_peephole{sfx}"] = g["peephole"]
        return dx, grads, dh0, dc0


class GRU(RecurrentStack):
    """Multi-layer GRU with ``torch.nn.GRU``'s equations, names and shapes.

    Parameters are those of :class:`LSTM` without ``peephole``/``forget_bias``.
    """

    cell = "gru"
    num_gates = 3
    has_cell_state = False
    summed_bias_gates = 2

    def _kernel_forward(self, x, layer, direction, h0, c0, layout):
        sfx = self._suffix(layer, direction)
        p = self.params
        b_ih = p[f"bias_ih{sfx}"] if self.bias else None
        b_hh = p[f"bias_hh{sfx}"] if self.bias else None
        out, h_n, cache = gru_forward(
            x, p[f"weight_ih{sfx}"], p[f"weight_hh{sfx}"], b_ih, b_hh, h0, layout, direction == 1
        )
        return out, h_n, None, cache

    def _kernel_backward(self, d_hidden, d_h_n, d_c_n, cache, layer, direction, need_dx=True):
        sfx = self._suffix(layer, direction)
        dx, g, dh0 = gru_backward(d_hidden, d_h_n, cache, need_dx)
        grads = {f"weight_ih{sfx}": g["w_ih"], f"weight_hh{sfx}": g["w_hh"]}
        if self.bias:
            grads[f"bias_ih{sfx}"] = g["b_ih"]
            grads[f"bias_hh{sfx}"] = g["b_hh"]
        return dx, grads, dh0, None


class CIFG(RecurrentStack):
    """Multi-layer coupled input-forget gate LSTM (Greff et al. 2017, "CIFG"): ``f = 1 - i``.

    Equations (per direction and layer; see :mod:`sparklstm.nn.lstm_kernel` for BPTT)::

        a   = W_ih x_t + W_hh h_{t-1} + b_ih + b_hh      split a_i, a_g, a_o   (gates i, g, o)
        i   = σ(a_i),  f = 1 - i,  g = tanh(a_g),  o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)

    Parameters are named as ``torch.nn.LSTM``'s with three gate blocks ``i, g, o`` instead of
    four: ``weight_ih_l{k}`` ``(3H, I_k)``, ``weight_hh_l{k}`` ``(3H, H)``, ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` ``(3H,)`` (``_reverse`` for the backward direction). Per direction and
    layer that is ``3((I_k + H) H + 2H)`` scalars, ``3((I_k + H) H + H)`` counting the two
    biases once (they only act as their sum): three quarters of the LSTM's ``4(...)``.
    ``I_0`` is ``input_size`` and ``I_k = directions * H`` above.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bidirectional, dropout, bias
        As :class:`LSTM`.
    forget_bias : float
        The forget gate's initial bias, as for :class:`LSTM`: the forget gate has no bias of
        its own (``f = σ(-a_i)``), so the input gate's bias starts at ``-forget_bias`` (in
        ``bias_ih``), which makes ``f`` start near ``σ(forget_bias)`` (0.73 for the default
        1.0) and ``i`` near ``1 - σ(forget_bias)``, as in the LSTM at initialisation.
    dtype : float32 (default) or float64.
    rng : ``numpy.random.Generator`` or seed, for initialisation and dropout.
    """

    cell = "cifg"
    num_gates = 3
    has_cell_state = True
    summed_bias_gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
        forget_bias: float = 1.0,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.forget_bias = float(forget_bias)
        super().__init__(
            input_size, hidden_size, num_layers, bidirectional, dropout, bias, dtype, rng
        )

    def _initial_bias(self) -> np.ndarray:
        # f = σ(-a_i) starts at σ(forget_bias): the input gate's bias is -forget_bias.
        bias = np.zeros(3 * self.hidden_size, dtype=self.dtype)
        bias[: self.hidden_size] = -self.forget_bias
        return bias

    def _kernel_forward(self, x, layer, direction, h0, c0, layout):
        sfx = self._suffix(layer, direction)
        p = self.params
        bias = p[f"bias_ih{sfx}"] + p[f"bias_hh{sfx}"] if self.bias else None
        return lstm_forward(
            x,
            p[f"weight_ih{sfx}"],
            p[f"weight_hh{sfx}"],
            bias,
            None,
            h0,
            c0,
            layout,
            direction == 1,
            coupled=True,
        )

    def _kernel_backward(self, d_hidden, d_h_n, d_c_n, cache, layer, direction, need_dx=True):
        sfx = self._suffix(layer, direction)
        dx, g, dh0, dc0 = lstm_backward(d_hidden, d_h_n, d_c_n, cache, need_dx)
        grads = {f"weight_ih{sfx}": g["w_ih"], f"weight_hh{sfx}": g["w_hh"]}
        if self.bias:
            grads[f"bias_ih{sfx}"] = g["bias"]
            grads[f"bias_hh{sfx}"] = g["bias"].copy()
        return dx, grads, dh0, dc0


# The cell names make_stack takes (the choices of the model configs' ``cell``:
# sparklstm.model.config.CELLS).
STACK_CELLS = ("lstm", "peephole", "gru", "cifg")


def make_stack(
    cell: str,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    forget_bias: float = 1.0,
    dtype: Any = np.float32,
    rng: np.random.Generator | int | None = None,
) -> RecurrentStack:
    """The recurrent stack of a cell name: ``"lstm"`` (:class:`LSTM`), ``"peephole"``
    (:class:`LSTM` with peepholes), ``"gru"`` (:class:`GRU`, which has no forget bias) or
    ``"cifg"`` (:class:`CIFG`)."""
    common = dict(num_layers=num_layers, bidirectional=bidirectional, dtype=dtype, rng=rng)
    if cell == "gru":
        return GRU(input_size, hidden_size, **common)
    if cell in ("lstm", "peephole"):
        return LSTM(
            input_size, hidden_size, peephole=cell == "peephole", forget_bias=forget_bias, **common
        )
    if cell == "cifg":
        return CIFG(input_size, hidden_size, forget_bias=forget_bias, **common)
    raise ValueError(f"cell must be one of {list(STACK_CELLS)}, got {cell!r}")
