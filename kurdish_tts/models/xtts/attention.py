"""Attention of the XTTS-style model's backbone, and the masks of its sequence."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface

# The backbone's attention implementation (see `_xtts_attention`), registered under the package's name.
ATTENTION_IMPLEMENTATION = "kurdish_xtts"


def _xtts_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """GPT-2 attention with a boolean `(batch, 1, queries, keys)` mask (True = may attend).

    When the caller passes a dict as `xtts_attention_store`, the layers it has keys for compute the probabilities
    explicitly (in float32) and store them under their index, for the guided-attention loss; every other call goes to
    PyTorch's fused `scaled_dot_product_attention`. This keeps the fast kernel in all layers that are not observed,
    which a model-wide "eager" switch would not, and needs no output hooks.
    """
    store = kwargs.get("xtts_attention_store")
    if store is None or module.layer_idx not in store:
        output = nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
        )
        return output.transpose(1, 2), None
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling  # (batch, heads, queries, keys)
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    probabilities = scores.softmax(dim=-1)
    weights = nn.functional.dropout(probabilities, p=dropout, training=module.training)
    store[module.layer_idx] = probabilities
    output = torch.matmul(weights.to(value.dtype), value)
    return output.transpose(1, 2), None


AttentionInterface.register(ATTENTION_IMPLEMENTATION, _xtts_attention)


class _NoPositionEmbedding(nn.Module):
    """Stands in for GPT-2's absolute position table: positions come from the model's own per-segment tables."""

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), device=position_ids.device)


def _causal_mask(key_valid: torch.Tensor, num_queries: int) -> torch.Tensor:
    """`(batch, 1, queries, keys)` bool mask: query `i` (the last `num_queries` positions) may attend key `j` iff
    `j` is not after it and `key_valid[:, j]`."""
    num_keys = key_valid.shape[1]
    key_positions = torch.arange(num_keys, device=key_valid.device)
    query_positions = torch.arange(num_keys - num_queries, num_keys, device=key_valid.device)
    causal = key_positions.unsqueeze(0) <= query_positions.unsqueeze(1)  # (queries, keys)
    return causal[None, None] & key_valid[:, None, None, :]


def _length_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    return torch.arange(size, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)  # (batch, size)
