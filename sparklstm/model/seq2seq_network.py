"""The layers of an encoder-decoder model, forward and backward over whole batches.

Parameters (one flat dict, arrays shared with the layer objects; torch's names where a torch
module matches)::

    encoder.embedding.weight      (V_src, E)        token sources (torch.nn.Embedding)
    encoder.rnn.weight_ih_l{k}... the encoder stack (torch.nn.LSTM/GRU names, _reverse)
    bridge.h_l{k}.weight, .bias   (H_k, 2 H_k)      bidirectional encoders only
    bridge.c_l{k}.weight, .bias   (H_k, 2 H_k)      ... with LSTM cells
    decoder.embedding.weight      (V_tgt, E)        token targets
    decoder.start                 (O,)              real targets: the first decoder input
    decoder.rnn.weight_ih_l{k}... the decoder stack (one direction)
    attention.weight              (H, D H_enc)      Luong "general" W_a (Linear(D H_enc, H))
    attention.combine.weight      (H, D H_enc + H)  h~ = tanh(W_c [context; h])
    output.weight, output.bias    (V_tgt or O, H)   torch.nn.Linear

Teacher forcing: the decoder's inputs are given whole (the previous target at every step), so
each stack runs over all its steps in one call of the recurrent kernels, and the attention
over all decoder steps is a few batched matrix products (:mod:`sparklstm.nn.attention`).

Backward, from the gradient of the output layer's inputs: the combination
``h~ = tanh(W_c [c; h])`` -> attention -> decoder BPTT (which also yields the gradient of the
decoder's initial states) -> bridge -> encoder BPTT, whose top layer also receives the
attention's gradient w.r.t. the encoder outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparklstm.model.seq2seq_config import Seq2SeqConfig
from sparklstm.nn.attention import AttentionCache, luong_attention_backward, luong_attention_forward
from sparklstm.nn.init import xavier_uniform
from sparklstm.nn.layers import dense_backward, dense_forward, embedding_backward, embedding_forward
from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrent import RecurrentStack, StackCache, make_stack

__all__ = ["DecoderState", "Seq2SeqCache", "Seq2SeqNetwork"]

# Per decoder layer: (h, c) of shape (1, B, H) in the caller's batch order (c None for GRU).
DecoderState = list[tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True, eq=False)
class EncoderCache:
    layout: PackedLayout
    token_ids: np.ndarray | None  # packed source ids
    layer_caches: list[StackCache]
    final_h: list[np.ndarray]  # per layer (D, B, H), caller's batch order
    final_c: list[np.ndarray | None]


@dataclass(frozen=True, eq=False)
class Seq2SeqCache:
    encoder: EncoderCache
    memory: np.ndarray  # (B, S, D H_enc) encoder top outputs, zero at padded steps
    source_mask: np.ndarray  # (B, S)
    bridged_h: list[np.ndarray]  # per layer (1, B, H): decoder initial h (caller's order)
    bridged_c: list[np.ndarray | None]
    layout: PackedLayout  # decoder steps
    token_ids: np.ndarray | None  # packed decoder input ids
    decoder_caches: list[StackCache]
    attention: AttentionCache | None
    combine_input: np.ndarray | None  # (B, T, D H_enc + H)
    combined: np.ndarray | None  # (B, T, H): h~
    features: np.ndarray  # (N_t, F) packed inputs of the output layer


class Seq2SeqNetwork:
    """Encoder, bridge, decoder, attention and output layer of a seq2seq model."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        self.config = config
        dtype = np.dtype(config.dtype)
        self.dtype = dtype
        rng = np.random.default_rng(config.seed)
        self.params: dict[str, np.ndarray] = {}
        if config.token_source:
            self.params["encoder.embedding.weight"] = self._embedding(rng, config.source_vocab_size)
            source_width = config.embedding_dim
        else:
            source_width = config.input_size
        if config.token_target:
            self.params["decoder.embedding.weight"] = self._embedding(rng, config.target_vocab_size)
            target_width = config.embedding_dim
        else:
            self.params["decoder.start"] = np.zeros(config.output_size, dtype=dtype)
            target_width = config.output_size
        self.encoder = self._stack(rng, "encoder", source_width, config.bidirectional)
        self.decoder = self._stack(rng, "decoder", target_width, False)
        directions = config.num_directions
        if config.bidirectional:
            for k, hidden in enumerate(config.hidden_sizes):
                parts = ("h", "c") if config.cell != "gru" else ("h",)
                for part in parts:
                    self.params[f"bridge.{part}_l{k}.weight"] = xavier_uniform(
                        rng, (hidden, 2 * hidden), dtype
                    )
                    self.params[f"bridge.{part}_l{k}.bias"] = np.zeros(hidden, dtype=dtype)
        top = config.hidden_sizes[-1]
        self.memory_width = directions * top
        if config.attention == "luong":
            self.params["attention.weight"] = xavier_uniform(rng, (top, self.memory_width), dtype)
            self.params["attention.combine.weight"] = xavier_uniform(
                rng, (top, self.memory_width + top), dtype
            )
        self.params["output.weight"] = xavier_uniform(rng, (config.output_width, top), dtype)
        self.params["output.bias"] = np.zeros(config.output_width, dtype=dtype)

    def _embedding(self, rng: np.random.Generator, vocab: int) -> np.ndarray:
        return (rng.standard_normal((vocab, self.config.embedding_dim)) * 0.1).astype(self.dtype)

    def _stack(
        self, rng: np.random.Generator, prefix: str, width: int, bidirectional: bool
    ) -> list[RecurrentStack]:
        """One single-layer stack per hidden size (sizes may differ), its parameters registered
        under ``{prefix}.rnn.`` with torch's names renumbered by layer."""
        config, layers = self.config, []
        for k, hidden in enumerate(config.hidden_sizes):
            layer_rng = np.random.default_rng(rng.integers(2**63))
            layer = make_stack(
                config.cell,
                width,
                hidden,
                bidirectional=bidirectional,
                forget_bias=config.forget_bias,
                dtype=self.dtype,
                rng=layer_rng,
            )
            for name, value in layer.params.items():
                self.params[self._layer_name(prefix, name, k)] = value
            layers.append(layer)
            width = layer.output_size
        return layers

    @staticmethod
    def _layer_name(prefix: str, layer_key: str, index: int) -> str:
        return f"{prefix}.rnn." + layer_key.replace("_l0", f"_l{index}", 1)

    @property
    def has_cell_state(self) -> bool:
        return self.config.cell != "gru"

    # ------------------------------------------------------------------- encoder
    def encode(self, source: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, EncoderCache]:
        """``(memory (B, S, D H), cache)``: the top layer's outputs (zero at padded steps) and
        every layer's final states, in the caller's batch order."""
        lengths = np.asarray(lengths)
        # Steps past the longest sequence are cut: the batch's arrays, and so every sum the
        # attention takes over source steps, do not depend on how wide the padding was.
        source = source[:, : int(lengths.max())]
        layout = PackedLayout.from_lengths(lengths, source.shape[1])
        token_ids = None
        if self.config.token_source:
            token_ids = layout.pack(source)
            hidden = embedding_forward(self.params["encoder.embedding.weight"], token_ids)
        else:
            hidden = layout.pack(source)
        caches, final_h, final_c = [], [], []
        inverse = layout.inverse_order
        for layer in self.encoder:
            hidden, h_n, c_n, cache = layer.forward_packed(hidden, layout, training=False)
            caches.append(cache)
            final_h.append(h_n[:, inverse])
            final_c.append(None if c_n is None else c_n[:, inverse])
        memory = layout.unpack(hidden)
        return memory, EncoderCache(layout, token_ids, caches, final_h, final_c)

    def bridge(self, encoder: EncoderCache) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """Initial decoder states per layer, ``(1, B, H)`` each, from the encoder's finals."""
        if not self.config.bidirectional:
            return list(encoder.final_h), list(encoder.final_c)
        bridged_h, bridged_c = [], []
        for k in range(len(self.encoder)):
            both = np.concatenate([encoder.final_h[k][0], encoder.final_h[k][1]], axis=1)
            h = np.tanh(
                dense_forward(
                    self.params[f"bridge.h_l{k}.weight"], self.params[f"bridge.h_l{k}.bias"], both
                )
            )
            bridged_h.append(h[None])
            if self.has_cell_state:
                both_c = np.concatenate([encoder.final_c[k][0], encoder.final_c[k][1]], axis=1)
                c = dense_forward(
                    self.params[f"bridge.c_l{k}.weight"], self.params[f"bridge.c_l{k}.bias"], both_c
                )
                bridged_c.append(c[None])
            else:
                bridged_c.append(None)
        return bridged_h, bridged_c

    # ----------------------------------------------------------- teacher forcing
    def decoder_inputs(self, inputs: np.ndarray, layout: PackedLayout) -> tuple[np.ndarray, ...]:
        """Packed decoder inputs: embedded ids, or the given values with step 0 replaced by
        ``decoder.start``. Returns ``(packed, token_ids or None)``."""
        if self.config.token_target:
            token_ids = layout.pack(inputs)
            return embedding_forward(self.params["decoder.embedding.weight"], token_ids), token_ids
        values = np.array(inputs, dtype=self.dtype, copy=True)
        values[:, 0, :] = self.params["decoder.start"]
        return layout.pack(values), None

    def forward(
        self,
        source: np.ndarray,
        source_lengths: np.ndarray,
        decoder_inputs: np.ndarray,
        target_lengths: np.ndarray,
    ) -> tuple[np.ndarray, Seq2SeqCache]:
        """Output-layer values at every valid decoder step, packed ``(N_t, V or O)`` in the
        order of ``PackedLayout.from_lengths(target_lengths)``, and the cache.

        ``decoder_inputs``: ``(B, T)`` ids (the start token, then the targets) or ``(B, T, O)``
        values (step 0 is replaced by ``decoder.start``, then the targets)."""
        memory, encoder = self.encode(source, source_lengths)
        source_mask = np.arange(memory.shape[1])[None, :] < np.asarray(source_lengths)[:, None]
        bridged_h, bridged_c = self.bridge(encoder)
        target_lengths = np.asarray(target_lengths)
        decoder_inputs = decoder_inputs[:, : int(target_lengths.max())]
        layout = PackedLayout.from_lengths(target_lengths, decoder_inputs.shape[1])
        hidden, token_ids = self.decoder_inputs(decoder_inputs, layout)
        order = layout.order
        caches = []
        for k, layer in enumerate(self.decoder):
            c0 = None if bridged_c[k] is None else bridged_c[k][:, order]
            hidden, _, _, cache = layer.forward_packed(
                hidden, layout, bridged_h[k][:, order], c0, training=False
            )
            caches.append(cache)
        attention = combine_input = combined = None
        if self.config.attention == "luong":
            queries = layout.unpack(hidden)  # (B, T, H)
            context, attention = luong_attention_forward(
                queries, memory, self.params["attention.weight"], source_mask
            )
            combine_input = np.concatenate([context, queries], axis=2)
            combined = np.tanh(combine_input @ self.params["attention.combine.weight"].T)
            features = layout.pack(combined)
        else:
            features = hidden
        outputs = dense_forward(self.params["output.weight"], self.params["output.bias"], features)
        cache = Seq2SeqCache(
            encoder,
            memory,
            source_mask,
            bridged_h,
            bridged_c,
            layout,
            token_ids,
            caches,
            attention,
            combine_input,
            combined,
            features,
        )
        return outputs, cache

    # ------------------------------------------------------------------- backward
    def backward(self, d_outputs: np.ndarray, cache: Seq2SeqCache) -> dict[str, np.ndarray]:
        """Gradients of every parameter, given ``d_outputs`` (packed like the outputs)."""
        config, params = self.config, self.params
        grads: dict[str, np.ndarray] = {}
        d_features, grads["output.weight"], grads["output.bias"] = dense_backward(
            d_outputs, params["output.weight"], cache.features
        )
        layout = cache.layout
        d_memory = None
        if config.attention == "luong":
            d_combined = layout.unpack(d_features)  # zero at padded decoder steps
            d_pre = d_combined * (1.0 - cache.combined**2)
            weight = params["attention.combine.weight"]
            grads["attention.combine.weight"] = np.einsum("btf,btg->fg", d_pre, cache.combine_input)
            d_combine_input = d_pre @ weight
            width = self.memory_width
            d_context, d_queries = d_combine_input[..., :width], d_combine_input[..., width:]
            d_queries_att, d_memory, grads["attention.weight"] = luong_attention_backward(
                d_context, cache.attention, params["attention.weight"]
            )
            d_hidden = layout.pack(d_queries + d_queries_att)
        else:
            d_hidden = d_features
        # Decoder BPTT, top layer first; each layer also yields its initial states' gradient.
        inverse = layout.inverse_order
        d_h0: list[np.ndarray] = [None] * len(self.decoder)  # type: ignore[list-item]
        d_c0: list[np.ndarray | None] = [None] * len(self.decoder)
        for k in range(len(self.decoder) - 1, -1, -1):
            d_hidden, layer_grads, dh, dc = self.decoder[k].backward_packed(
                d_hidden, cache.decoder_caches[k]
            )
            for name, value in layer_grads.items():
                grads[self._layer_name("decoder", name, k)] = value
            d_h0[k] = dh[:, inverse]
            d_c0[k] = None if dc is None else dc[:, inverse]
        if config.token_target:
            grads["decoder.embedding.weight"] = embedding_backward(
                d_hidden, cache.token_ids, config.target_vocab_size
            )
        else:
            # Step 0's input is decoder.start for every row: the first batch_size packed rows.
            grads["decoder.start"] = d_hidden[: layout.batch_size].sum(axis=0)
        d_final_h, d_final_c = self._bridge_backward(d_h0, d_c0, cache, grads)
        self._encoder_backward(d_memory, d_final_h, d_final_c, cache.encoder, grads)
        return {name: grads[name] for name in params}

    def _bridge_backward(
        self,
        d_h0: list[np.ndarray],
        d_c0: list[np.ndarray | None],
        cache: Seq2SeqCache,
        grads: dict[str, np.ndarray],
    ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """Gradients w.r.t. the encoder's final states (``(D, B, H)`` per layer)."""
        if not self.config.bidirectional:
            return d_h0, d_c0
        encoder = cache.encoder
        d_final_h, d_final_c = [], []
        for k in range(len(self.encoder)):
            hidden = encoder.final_h[k].shape[2]
            d_pre = d_h0[k][0] * (1.0 - cache.bridged_h[k][0] ** 2)
            both = np.concatenate([encoder.final_h[k][0], encoder.final_h[k][1]], axis=1)
            d_both, grads[f"bridge.h_l{k}.weight"], grads[f"bridge.h_l{k}.bias"] = dense_backward(
                d_pre, self.params[f"bridge.h_l{k}.weight"], both
            )
            d_final_h.append(np.stack([d_both[:, :hidden], d_both[:, hidden:]]))
            if self.has_cell_state:
                both_c = np.concatenate([encoder.final_c[k][0], encoder.final_c[k][1]], axis=1)
                d_both_c, grads[f"bridge.c_l{k}.weight"], grads[f"bridge.c_l{k}.bias"] = (
                    dense_backward(d_c0[k][0], self.params[f"bridge.c_l{k}.weight"], both_c)
                )
                d_final_c.append(np.stack([d_both_c[:, :hidden], d_both_c[:, hidden:]]))
            else:
                d_final_c.append(None)
        return d_final_h, d_final_c

    def _encoder_backward(
        self,
        d_memory: np.ndarray | None,
        d_final_h: list[np.ndarray],
        d_final_c: list[np.ndarray | None],
        encoder: EncoderCache,
        grads: dict[str, np.ndarray],
    ) -> None:
        layout = encoder.layout
        order = layout.order
        d_hidden = None if d_memory is None else layout.pack(d_memory)
        for k in range(len(self.encoder) - 1, -1, -1):
            d_c = None if d_final_c[k] is None else d_final_c[k][:, order]
            d_hidden, layer_grads, _, _ = self.encoder[k].backward_packed(
                d_hidden, encoder.layer_caches[k], d_final_h[k][:, order], d_c
            )
            for name, value in layer_grads.items():
                grads[self._layer_name("encoder", name, k)] = value
        if self.config.token_source:
            grads["encoder.embedding.weight"] = embedding_backward(
                d_hidden, encoder.token_ids, self.config.source_vocab_size
            )

    # ------------------------------------------------------------------ decoding
    def decode_step(
        self,
        inputs: np.ndarray,
        states: DecoderState,
        memory: np.ndarray,
        source_mask: np.ndarray,
    ) -> tuple[np.ndarray, DecoderState, np.ndarray | None]:
        """One decoder step for a batch: ``inputs`` ``(B,)`` ids or ``(B, O)`` values ->
        ``(outputs (B, V or O), new states, attention weights (B, S) or None)``."""
        batch = inputs.shape[0]
        layout = PackedLayout.from_lengths(np.ones(batch, dtype=np.int64), 1)
        order = layout.order  # identity for equal lengths, kept for clarity
        if self.config.token_target:
            hidden = embedding_forward(self.params["decoder.embedding.weight"], inputs[order])
        else:
            hidden = np.asarray(inputs, dtype=self.dtype)[order]
        new_states: DecoderState = []
        for k, layer in enumerate(self.decoder):
            h0, c0 = states[k]
            hidden, h_n, c_n, _ = layer.forward_packed(
                hidden, layout, h0[:, order], None if c0 is None else c0[:, order], training=False
            )
            inverse = layout.inverse_order
            new_states.append((h_n[:, inverse], None if c_n is None else c_n[:, inverse]))
        hidden = hidden[layout.inverse_order]
        weights = None
        if self.config.attention == "luong":
            context, attention = luong_attention_forward(
                hidden[:, None, :], memory, self.params["attention.weight"], source_mask
            )
            combine_input = np.concatenate([context[:, 0], hidden], axis=1)
            hidden = np.tanh(combine_input @ self.params["attention.combine.weight"].T)
            weights = attention.weights[:, 0]
        outputs = dense_forward(self.params["output.weight"], self.params["output.bias"], hidden)
        return outputs, new_states, weights
