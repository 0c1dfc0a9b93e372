"""Training modes as trainable masks over parameter paths.

Paths are the param-tree keys joined with ``/`` (``encoder/layers_0/attention/query/kernel``,
``adapter/layers_0/kernel``, ``task_prompt/prompt``, ``.../query/lora_a``). A mode is a tuple of
regular expressions; a parameter trains iff one of them matches its path (``re.search``):

* ``frozen``: only the adapter (incl. UEM), the task prompt and the genre probe's head.
* ``lora``: ``frozen`` plus every LoRA factor (``lora_a`` / ``lora_b``).
* ``full``: everything.

:func:`make_optimizer` wraps a base optax transformation with ``optax.multi_transform`` so
frozen parameters get ``optax.set_to_zero()`` (zero update) and hold NO optimizer state (their
slots in the base transformation's state are ``optax.MaskedNode``).
:func:`apply_updates` then leaves frozen parameters bit-identical (it returns the very same
arrays for them, so even ``-0.0`` survives).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import jax
import optax
from flax import traverse_util

TRAIN = "train"
FREEZE = "freeze"

# The genre probe's head (persoma.models.genre_probe) trains with the prompts: it only feeds a loss.
_PROMPT_PATTERNS = (r"^adapter/", r"^task_prompt/", r"^genre_probe/")
_LORA_PATTERNS = (r"(^|/)lora_[ab]$",)

MODES: dict[str, tuple[str, ...]] = {
    "frozen": _PROMPT_PATTERNS,
    "lora": _PROMPT_PATTERNS + _LORA_PATTERNS,
    "full": (r".*",),
}


def _patterns(mode: str, extra_trainable: Sequence[str] = ()) -> tuple[str, ...]:
  if mode not in MODES:
    raise ValueError(f"unknown training mode {mode!r}; choose one of {sorted(MODES)}")
  return MODES[mode] + tuple(extra_trainable)


def param_paths(params: Any) -> list[str]:
  """All leaf paths of a (nested dict) param tree, ``/``-joined, in flatten order."""
  return ["/".join(k) for k in traverse_util.flatten_dict(_as_dict(params))]


def _as_dict(params: Any) -> dict:
  if hasattr(params, "unfreeze"):
    params = params.unfreeze()
  if not isinstance(params, Mapping):
    raise TypeError(f"params must be a nested mapping, got {type(params).__name__}")
  return dict(params)


def _map_paths(params: Any, fn) -> Any:
  flat = traverse_util.flatten_dict(_as_dict(params))
  return traverse_util.unflatten_dict({k: fn("/".join(k)) for k in flat})


def trainable_mask(params: Any, mode: str, extra_trainable: Sequence[str] = ()) -> Any:
  """Tree of bools, same structure as ``params``: True where the param trains in ``mode``.

  ``extra_trainable``: more path regexes to train (e.g. ``r'encoder_norm'``).
  Raises ValueError for an unknown mode.
  """
  regexes = [re.compile(p) for p in _patterns(mode, extra_trainable)]
  return _map_paths(params, lambda path: any(r.search(path) for r in regexes))


def param_labels(params: Any, mode: str, extra_trainable: Sequence[str] = ()) -> Any:
  """Tree of ``'train'`` / ``'freeze'`` labels for ``optax.multi_transform``."""
  mask = trainable_mask(params, mode, extra_trainable)
  return jax.tree_util.tree_map(lambda m: TRAIN if m else FREEZE, mask)


def trainable_paths(params: Any, mode: str, extra_trainable: Sequence[str] = ()) -> list[str]:
  """Sorted paths of the params that train in ``mode``."""
  mask = traverse_util.flatten_dict(trainable_mask(params, mode, extra_trainable))
  return sorted("/".join(k) for k, m in mask.items() if m)


def check_mode(params: Any, mode: str, extra_trainable: Sequence[str] = ()) -> None:
  """Raises a clear ValueError when ``mode`` cannot apply to ``params``."""
  paths = param_paths(params)
  if mode == "lora" and not any(re.search(_LORA_PATTERNS[0], p) for p in paths):
    raise ValueError("training mode 'lora' but the params have no lora_a/lora_b: set "
                     "T5Config.lora_rank > 0 (gin macro LORA_RANK, e.g. --gin.LORA_RANK=4)")
  if not trainable_paths(params, mode, extra_trainable):
    raise ValueError(f"training mode {mode!r} leaves no trainable parameter (no adapter/ or "
                     "task_prompt/ in the params, e.g. the text-prompt baseline): use 'lora' "
                     "or 'full'")


def make_optimizer(base_tx: optax.GradientTransformation, params: Any, mode: str,
                   extra_trainable: Sequence[str] = ()) -> optax.GradientTransformation:
  """``base_tx`` on the trainable params, zero updates and no state for the frozen ones.

  Raises ValueError for an unknown mode or one that trains nothing / lacks LoRA params.
  """
  check_mode(params, mode, extra_trainable)
  labels = param_labels(params, mode, extra_trainable)
  return optax.multi_transform({TRAIN: base_tx, FREEZE: optax.set_to_zero()}, labels)


def apply_updates(params: Any, updates: Any, mask: Any) -> Any:
  """``params + updates`` on trainable leaves; frozen leaves are returned unchanged (same array).

  Works under ``jax.jit`` (``mask`` is a static tree of Python bools).
  """
  return jax.tree_util.tree_map(
      lambda m, p, u: optax.apply_updates(p, u) if m else p, mask, params, updates)


def count_params(params: Any, mask: Any = None) -> int:
  """Number of scalars in ``params`` (only where ``mask`` is True, if given)."""
  leaves = jax.tree_util.tree_leaves(params)
  if mask is None:
    return int(sum(x.size for x in leaves))
  return int(sum(x.size for x, m in zip(leaves, jax.tree_util.tree_leaves(mask)) if m))


def describe(params: Any, mode: str, extra_trainable: Iterable[str] = ()) -> str:
  """One-line summary: mode, trainable / total param counts."""
  mask = trainable_mask(params, mode, tuple(extra_trainable))
  n_train, n_all = count_params(params, mask), count_params(params)
  return f"mode={mode}: {n_train:,} of {n_all:,} params trainable ({100 * n_train / n_all:.2f}%)"
