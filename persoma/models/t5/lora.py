"""T5X-style DenseGeneral with optional LoRA, and merging LoRA into the base kernels.

The kernel is stored flattened `[prod(in), prod(out)]` exactly as T5X stores it (e.g. a query
kernel is `[emb, heads*head_dim]` with axes `('embed', 'joined_kv')`) and reshaped at use.
With `lora_rank = r > 0` two more params sit beside `kernel`:
`lora_a [prod(in), r]` (axes `(in_axis, 'lora_rank')`, fan-in normal init) and
`lora_b [r, prod(out)]` (axes `('lora_rank', out_axis)`, zeros), and the output is
`x @ W + (alpha / r) * (x @ A) @ B`, so step 0 equals the base model.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Initializer = Callable[..., jax.Array]
LORA_A = "lora_a"
LORA_B = "lora_b"


def _normalize_axes(axes: Sequence[int], ndim: int) -> tuple[int, ...]:
  return tuple(a if a >= 0 else a + ndim for a in axes)


class DenseGeneral(nn.Module):
  """Linear map over the trailing `axis` dims of `x` to `features` (no bias), optional LoRA.

  Shapes: `x [..., *in]` -> `[..., *features]` where `in = x.shape[axis]`.
  Params: `kernel [prod(in), prod(features)]` float32 with logical axes `kernel_axes`;
  `lora_a`, `lora_b` when `lora_rank > 0`.
  """

  features: int | tuple[int, ...]
  kernel_axes: tuple[str, str]
  axis: int | tuple[int, ...] = -1
  dtype: Any = jnp.float32
  kernel_init: Initializer = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_a_init: Initializer = nn.initializers.variance_scaling(1.0, "fan_in", "normal")

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
    axis = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
    axis = _normalize_axes(axis, x.ndim)
    in_shape = tuple(x.shape[a] for a in axis)
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(features))
    contract = (axis, tuple(range(len(axis))))
    x = jnp.asarray(x, self.dtype)

    kernel = self.param("kernel", nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
                        (n_in, n_out), jnp.float32)
    kernel = jnp.asarray(kernel, self.dtype).reshape(in_shape + features)
    y = lax.dot_general(x, kernel, (contract, ((), ())))
    if self.lora_rank > 0:
      r = self.lora_rank
      lora_a = self.param(LORA_A, nn.with_logical_partitioning(
          self.lora_a_init, (self.kernel_axes[0], "lora_rank")), (n_in, r), jnp.float32)
      lora_b = self.param(LORA_B, nn.with_logical_partitioning(
          nn.initializers.zeros_init(), ("lora_rank", self.kernel_axes[1])), (r, n_out), jnp.float32)
      lora_a = jnp.asarray(lora_a, self.dtype).reshape(in_shape + (r,))
      lora_b = jnp.asarray(lora_b, self.dtype).reshape((r,) + features)
      h = lax.dot_general(x, lora_a, (contract, ((), ())))  # [..., r]
      delta = lax.dot_general(h, lora_b, (((h.ndim - 1,), (0,)), ((), ())))
      y = y + jnp.asarray(self.lora_alpha / r, self.dtype) * delta
    return y


def _unbox(tree: Any) -> Any:
  return nn.meta.unbox(tree)


def merge_lora(params: Any, config: Any) -> dict:
  """Folds every `lora_a`/`lora_b` pair into its sibling `kernel` and drops them.

  `kernel' = kernel + (lora_alpha / lora_rank) * lora_a @ lora_b` (float32). The result has the
  plain T5 tree, so it runs with `config.replace(lora_rank=0)` and gives the same outputs as the
  unmerged params with `config` (up to float rounding). Boxed (logically partitioned) params are
  unboxed. `config` needs `lora_rank`, `lora_alpha` (a `T5Config`).
  """
  if config.lora_rank <= 0:
    raise ValueError("merge_lora: config.lora_rank is 0, there is no LoRA to merge")
  scale = config.lora_alpha / config.lora_rank
  found = [0]

  def merge(node: Any, path: str) -> Any:
    if not isinstance(node, dict) and not hasattr(node, "items"):
      return node
    node = dict(node.items())
    if LORA_A in node or LORA_B in node:
      if not (LORA_A in node and LORA_B in node and "kernel" in node):
        raise ValueError(f"merge_lora: {path or '<root>'} has an incomplete LoRA triple "
                         f"(keys: {sorted(node)})")
      kernel, a, b = node.pop("kernel"), node.pop(LORA_A), node.pop(LORA_B)
      if a.shape[1] != config.lora_rank:
        raise ValueError(f"merge_lora: {path}/lora_a has rank {a.shape[1]}, "
                         f"config.lora_rank is {config.lora_rank}")
      merged = jnp.asarray(kernel, jnp.float32) + scale * jnp.matmul(
          jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32),
          precision=lax.Precision.HIGHEST)
      node["kernel"] = merged.astype(kernel.dtype)
      found[0] += 1
    return {k: merge(v, f"{path}/{k}" if path else k) for k, v in node.items()}

  out = merge(_unbox(params), "")
  if not found[0]:
    raise ValueError("merge_lora: no lora_a/lora_b params found in the tree")
  return out
