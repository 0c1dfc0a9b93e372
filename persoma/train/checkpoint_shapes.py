"""Tells a checkpoint written for another model (array shapes differ) from a corrupt one.

Eval and inference rebuild the model from gin; a binding that differs from the run's
`config.gin` (`--gin.ENCODER="'hashing:32'"` on a run trained with a wider encoder) changes
parameter shapes. orbax reports that as a failed restore, like damaged files; here the stored
shapes are read from the checkpoint's metadata file first and compared with the model's, so
the caller gets one `CheckpointMismatchError` naming the parameter and both shapes.
"""

from __future__ import annotations

from typing import Any

from etils import epath
import jax
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
  """A checkpoint that was written for another model: its array shapes differ from the model's.

  Not corruption: every step of such a run mismatches alike, so there is no fallback, and the
  training `Checkpointer` never sets such a step aside.
  """


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """`{'params/encoder/kernel': shape}` of every array leaf (tuples and lists by index)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {"/".join(_key_name(k) for k in path): tuple(leaf.shape) for path, leaf in flat
          if getattr(leaf, "shape", None) is not None}


def stored_shapes(state_dir: str) -> dict[str, tuple[int, ...]] | None:
  """Array shapes of an orbax pytree checkpoint (`.../<step>/state`) from its metadata file
  alone; None if that file cannot be read (then the restore itself reports the damage)."""
  try:
    meta = ocp.PyTreeCheckpointHandler().metadata(epath.Path(state_dir))
  except Exception:  # pylint: disable=broad-except
    return None
  return _flat_shapes(getattr(meta, "tree", meta))


def _mismatch_error(state_dir: str, differ: list[tuple[str, tuple, tuple]],
                    missing: list[str]) -> CheckpointMismatchError:
  if differ:
    name, stored, wanted = differ[0]
    what = (f"parameter {name!r} has shape {stored} in the checkpoint but {wanted} in the "
            f"model built from this config")
    if len(differ) > 1:
      what += f" ({len(differ) - 1} more arrays differ in shape)"
    if missing:
      what += f"; {len(missing)} model parameters are absent from it (first {missing[0]!r})"
  else:
    what = (f"{len(missing)} model parameters are absent from it (first {missing[0]!r}), so it "
            f"holds another architecture")
  return CheckpointMismatchError(
      f"checkpoint {state_dir} does not fit this model: {what}. This is not corruption: the "
      f"checkpoint was written by a run whose ENCODER (embedding width), FORMAT (texts per "
      f"item), HISTORY_SIZE, ADAPTER or MODEL_SIZE differ from the config used now. Use the "
      f"run's own config.gin and drop --gin overrides of those settings.")


def check_compatible(state_dir: str, abstract: Any) -> None:
  """Raises `CheckpointMismatchError` if a checkpoint's stored array shapes (or its `params`)
  do not match `abstract` (leaves the checkpoint has and `abstract` lacks are fine)."""
  stored = stored_shapes(state_dir)
  if stored is None:
    return
  wanted = _flat_shapes(abstract)
  differ = [(k, stored[k], s) for k, s in wanted.items() if k in stored and stored[k] != s]
  differ.sort(key=lambda d: not d[0].startswith("params/"))  # a parameter first
  missing = [k for k in wanted if k.startswith("params/") and k not in stored]
  if differ or missing:
    raise _mismatch_error(state_dir, differ, missing)


def raise_if_shape_error(where: str, e: Exception) -> None:
  """orbax's own shape complaint (in case the metadata check could not see it)."""
  if "not compatible with the stored shape" in str(e):
    raise CheckpointMismatchError(
        f"checkpoint {where} does not fit this model ({str(e)[:300]}). This is not corruption: "
        f"ENCODER, FORMAT, HISTORY_SIZE, ADAPTER or MODEL_SIZE differ from the run's "
        f"config.gin; use that config.gin.") from e
