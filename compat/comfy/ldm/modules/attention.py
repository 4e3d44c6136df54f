"""`comfy.ldm.modules.attention` for node packs: the attention functions packs call on their own tensors.

`optimized_attention(q, k, v, heads, mask=None, ...)` and its variants take `[B, tokens, heads * dim]` tensors
(or `[B, heads, tokens, dim]` with `skip_reshape`) and run torch's scaled_dot_product_attention, which is also
what Loom's own models attend with. `wrap_attn` and `register_attention_function` keep the reference's
registry shape (`REGISTERED_ATTENTION_FUNCTIONS`); Loom's models do not look functions up there. The layer
classes (CrossAttention, BasicTransformerBlock, ...) exist by name only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compat.surface import complete, resolve

REGISTERED_ATTENTION_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def exists(value: Any) -> bool:
    return value is not None


def default(value: Any, fallback: Any) -> Any:
    return value if value is not None else fallback


def wrap_attn(function: Callable[..., Any]) -> Callable[..., Any]:
    """The reference's decorator for attention backends; here the function is used as it is."""
    return function


def register_attention_function(name: str, function: Callable[..., Any]) -> None:
    REGISTERED_ATTENTION_FUNCTIONS[name] = function


def attention_pytorch(
    q: Any,
    k: Any,
    v: Any,
    heads: int,
    mask: Any = None,
    attn_precision: Any = None,
    skip_reshape: bool = False,
    skip_output_reshape: bool = False,
    **kwargs: Any,
) -> Any:
    import torch

    if skip_reshape:
        b, _, _, dim_head = q.shape
    else:
        b, _, inner = q.shape
        dim_head = inner // heads
        q, k, v = (t.view(b, -1, heads, dim_head).transpose(1, 2) for t in (q, k, v))
    if mask is not None:
        if mask.ndim == 2:
            mask = mask.unsqueeze(0)
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    if skip_output_reshape:
        return out
    return out.transpose(1, 2).reshape(b, -1, heads * dim_head)


optimized_attention = attention_pytorch
optimized_attention_masked = attention_pytorch
attention_basic = attention_pytorch
attention_sub_quad = attention_pytorch
attention_split = attention_pytorch
register_attention_function("pytorch", attention_pytorch)


def optimized_attention_for_device(device: Any, mask: bool = False, small_input: bool = False) -> Callable[..., Any]:
    return attention_pytorch


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
