"""Partial restore of a T5X checkpoint into a model's param tree (without t5x).

`restore_params(template, path) -> (params, RestoreReport)`: fills a param tree (e.g.
`variables['params']` from `model.init`, boxed or not, arrays or ShapeDtypeStructs): T5 params
come from the checkpoint (read by `persoma.models.checkpoints.load_t5x_checkpoint`), params the
checkpoint lacks (adapter, task prompt, LoRA) keep the template's fresh values and are reported by
name; shape mismatches and checkpoints of another architecture are `CheckpointError`s.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Any, Iterable

import numpy as np

from persoma.models.checkpoints import (LORA_LEAVES, T5_TOP_LEVEL, CheckpointError,
                                        load_t5x_checkpoint)

logger = logging.getLogger(__name__)

_LAYER_RE = re.compile(r"^(encoder|decoder)/layers_(\d+)/")


@dataclasses.dataclass(frozen=True)
class RestoreReport:
  """What `restore_params` did, by flat param path."""

  checkpoint: str
  restored: tuple[str, ...]
  kept_from_template: tuple[str, ...]  # absent from the checkpoint: fresh init kept
  unused_in_checkpoint: tuple[str, ...]
  cast: tuple[str, ...]  # restored with a dtype change (e.g. bfloat16 -> float32)

  def __str__(self) -> str:
    parts = [f"restored {len(self.restored)} params from {self.checkpoint}"]
    if self.kept_from_template:
      parts.append(f"{len(self.kept_from_template)} not in the checkpoint keep their fresh init: "
                   + ", ".join(self.kept_from_template))
    if self.unused_in_checkpoint:
      parts.append(f"{len(self.unused_in_checkpoint)} checkpoint params unused: "
                   + _examples(list(self.unused_in_checkpoint)))
    if self.cast:
      parts.append(f"{len(self.cast)} cast to the model dtype")
    return "; ".join(parts)


def _flatten_template(node: Any, prefix: str, out: dict[str, Any]) -> None:
  if hasattr(node, "items") and not hasattr(node, "shape"):
    for k, v in node.items():
      _flatten_template(v, f"{prefix}/{k}" if prefix else str(k), out)
  else:
    out[prefix] = node


def _layer_counts(keys: Iterable[str]) -> dict[str, int]:
  counts = {"encoder": 0, "decoder": 0}
  for k in keys:
    m = _LAYER_RE.match(k)
    if m:
      counts[m.group(1)] = max(counts[m.group(1)], int(m.group(2)) + 1)
  return counts


def _is_backbone(key: str) -> bool:
  return key.split("/", 1)[0] in T5_TOP_LEVEL and key.rsplit("/", 1)[-1] not in LORA_LEAVES


def _examples(keys: list[str], n: int = 5) -> str:
  return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def restore_params(template: Any, path: str | os.PathLike | None = None, *,
                   checkpoint: dict[str, np.ndarray] | None = None) -> tuple[Any, RestoreReport]:
  """Fills `template` (a nested param dict, boxed or not, arrays or ShapeDtypeStructs) from a
  T5X checkpoint at `path` (or an already loaded flat `checkpoint` dict).

  Returns the new tree (same structure and boxing; values cast to the template dtypes, placed
  with the template leaf's sharding when it has one) and a `RestoreReport`. Raises
  `CheckpointError` (a ValueError) when a param's shape differs (naming it and both shapes), or
  when the checkpoint is of another architecture: any T5 param of the template missing from it,
  or T5 params in it the template lacks (e.g. different layer counts).
  """
  import jax
  from flax import traverse_util
  from flax.core import meta

  if hasattr(template, "items") and "params" in template and "encoder" not in template:
    inner, report = restore_params(template["params"], path, checkpoint=checkpoint)
    return {**dict(template.items()), "params": inner}, report
  if checkpoint is None:
    if path is None:
      raise ValueError("restore_params needs a checkpoint path or a loaded checkpoint dict")
    checkpoint = load_t5x_checkpoint(path)
  source = os.fspath(path) if path is not None else "<checkpoint dict>"

  flat_t: dict[str, Any] = {}
  _flatten_template(template, "", flat_t)
  backbone = [k for k in flat_t if _is_backbone(k)]
  if not backbone:
    raise CheckpointError("restore_params: the template has no T5 params (token_embedder/, "
                          "encoder/, decoder/); pass the model's param tree")
  missing = sorted(k for k in backbone if k not in checkpoint)
  unused = sorted(k for k in checkpoint if k not in flat_t)
  unused_backbone = [k for k in unused if _is_backbone(k)]
  if missing or unused_backbone:
    mc, cc = _layer_counts(flat_t), _layer_counts(checkpoint)
    msg = [f"Checkpoint {source} is not of this model's architecture."]
    if mc != cc:
      msg.append(f"Layer counts differ: model encoder={mc['encoder']} decoder={mc['decoder']}, "
                 f"checkpoint encoder={cc['encoder']} decoder={cc['decoder']}.")
    if missing:
      msg.append(f"{len(missing)} of {len(backbone)} T5 params of the model are missing from the "
                 f"checkpoint: {_examples(missing)}.")
    if unused_backbone:
      msg.append(f"{len(unused_backbone)} T5 params in the checkpoint are not in the model: "
                 f"{_examples(unused_backbone)}.")
    raise CheckpointError(" ".join(msg))

  mismatched = []
  for key, leaf in flat_t.items():
    value = leaf.value if isinstance(leaf, meta.AxisMetadata) else leaf
    if key in checkpoint and tuple(checkpoint[key].shape) != tuple(value.shape):
      mismatched.append(f"{key!r}: model expects {tuple(value.shape)}, checkpoint has "
                        f"{tuple(checkpoint[key].shape)}")
  if mismatched:
    raise CheckpointError(f"Shape mismatch for {len(mismatched)} param(s) restoring from "
                          f"{source}: " + "; ".join(mismatched))

  new_flat, restored, kept, cast = {}, [], [], []
  for key, leaf in flat_t.items():
    if key not in checkpoint:
      new_flat[key] = leaf
      kept.append(key)
      continue
    is_box = isinstance(leaf, meta.AxisMetadata)
    value = leaf.value if is_box else leaf
    arr = checkpoint[key]
    if np.dtype(arr.dtype) != np.dtype(value.dtype):
      cast.append(key)
      arr = arr.astype(value.dtype)
    sharding = getattr(value, "sharding", None)
    new_value = jax.device_put(arr, sharding) if sharding is not None else jax.numpy.asarray(arr)
    new_flat[key] = leaf.replace_boxed(new_value) if is_box else new_value
    restored.append(key)
  report = RestoreReport(source, tuple(restored), tuple(kept), tuple(unused), tuple(cast))
  if kept:
    logger.info("restore_params: %d params not in %s keep their fresh init: %s", len(kept),
                source, ", ".join(kept))
  if unused:
    logger.info("restore_params: %d checkpoint params unused: %s", len(unused), _examples(unused))
  out = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in new_flat.items()})
  return out, report
