"""Luong "general" attention (Luong, Pham & Manning 2015), batched over every decoder step.

For decoder outputs ``h_t`` (the queries, ``(B, T, H)``) and encoder outputs ``m_s`` (the
memory, ``(B, S, E)``), with ``W_a`` ``(H, E)``::

    score[t, s]  = h_t . (W_a m_s)                       (B, T, S)
    alpha[t, :]  = softmax(score[t, :]) over the valid source steps
    context[t]   = sum_s alpha[t, s] m_s                 (B, T, E)

Padded source steps (``source_mask`` False) get a weight of exactly zero: their scores are left
out of the softmax, not merely made small. A row with no valid step at all is refused.

Why "general" and no input feeding: with the attention kept out of the recurrence, a
teacher-forced decoder runs over the whole target sequence in one call of the recurrent kernels,
and the attention over all steps is three batched matrix products, forward and backward; the
additive attention of Bahdanau et al. (2015) feeds the context into the decoder's recurrence,
which forces a Python loop over decoder steps in training.

Backward (``d_context`` given)::

    d_alpha[t, s]  = d_context[t] . m_s
    d_score        = alpha * (d_alpha - sum_s alpha * d_alpha)         (softmax)
    d_h            = d_score @ (m W_a^T)
    d_m            = alpha^T @ d_context + d_score^T @ h W_a
    d_W_a          = sum_b (d_score^T @ h)^T @ m
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AttentionCache", "luong_attention_backward", "luong_attention_forward"]


@dataclass(frozen=True, eq=False)
class AttentionCache:
    queries: np.ndarray  # (B, T, H)
    memory: np.ndarray  # (B, S, E)
    projected: np.ndarray  # (B, S, H): memory @ W_a^T
    weights: np.ndarray  # (B, T, S): alpha, exactly 0 at padded source steps


def luong_attention_forward(
    queries: np.ndarray, memory: np.ndarray, weight: np.ndarray, source_mask: np.ndarray
) -> tuple[np.ndarray, AttentionCache]:
    """``(context (B, T, E), cache)``; ``cache.weights`` holds the attention weights.

    ``source_mask`` is ``(B, S)`` bool, True at valid source steps (at least one per row).
    """
    if not source_mask.any(axis=1).all():
        raise ValueError("every sequence needs at least one valid source step to attend to")
    projected = memory @ weight.T  # (B, S, H)
    scores = queries @ projected.transpose(0, 2, 1)  # (B, T, S)
    valid = source_mask[:, None, :]
    # Softmax over the valid steps only: the maximum is taken over them, and the padded
    # steps' exponentials are set to zero before the sum (so their weight is exactly 0).
    shifted = np.where(valid, scores, -np.inf)
    shifted = shifted - shifted.max(axis=2, keepdims=True)
    exps = np.where(valid, np.exp(np.where(valid, shifted, 0.0)), 0.0).astype(scores.dtype)
    weights = exps / exps.sum(axis=2, keepdims=True)
    context = weights @ memory  # (B, T, E)
    return context, AttentionCache(queries, memory, projected, weights)


def luong_attention_backward(
    d_context: np.ndarray, cache: AttentionCache, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d_queries (B, T, H), d_memory (B, S, E), d_weight (H, E))`` for ``d_context``."""
    alpha, memory, queries = cache.weights, cache.memory, cache.queries
    d_alpha = d_context @ memory.transpose(0, 2, 1)  # (B, T, S)
    d_scores = alpha * (d_alpha - (alpha * d_alpha).sum(axis=2, keepdims=True))
    d_queries = d_scores @ cache.projected  # (B, T, H)
    d_projected = d_scores.transpose(0, 2, 1) @ queries  # (B, S, H)
    d_memory = alpha.transpose(0, 2, 1) @ d_context + d_projected @ weight  # (B, S, E)
    d_weight = np.einsum("bsh,bse->he", d_projected, memory)
    return d_queries, d_memory, d_weight
