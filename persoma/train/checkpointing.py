"""orbax checkpoints for training: periodic keep-N, best-on-validation-F1, exact resume.

Layout under the model directory:

  MODEL_DIR/checkpoints/<step>/{state,meta}   periodic, the newest `keep` kept
  MODEL_DIR/best/<step>/{state,meta}          the best validation F1 so far (`keep_best` kept)

`state` is the train state pytree (`{'step', 'params', 'opt_state'}`), `meta` a JSON dict of
trainer bookkeeping (best F1, early-stopping counter, ...). orbax writes each step into a
temporary directory and renames it when complete, so a save interrupted by a kill never shows up
as a step; on object stores (`gs://`), where it writes in place, a step counts once orbax has
written its `commit_success.txt`. A step that exists but cannot be read (corrupt files) is
skipped with a warning and the previous good one is restored instead; the training
`Checkpointer` then renames the unreadable step dir to `<step>.unreadable-<n>` (kept, no longer
a step), so the step can be saved again once it is retrained. A checkpoint whose array shapes
differ from the model's (a run with another encoder, format or size) is not corrupt: restoring
it raises `CheckpointMismatchError` naming the parameter and both shapes, and nothing is moved.
`PreemptionGuard` turns SIGTERM (TPU preemption) into a flag the training loop polls, so it can
save before exiting.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from typing import Any

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from persoma import atomic_io
from persoma import errors
from persoma import fileio
from persoma.train import checkpoint_shapes as shapes

CheckpointMismatchError = shapes.CheckpointMismatchError

LATEST_SUBDIR = "checkpoints"
BEST_SUBDIR = "best"
#: A step dir found unreadable is renamed to `<step>` + this + `<n>` (orbax ignores the name).
UNREADABLE_INFIX = ".unreadable-"


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """Attributes:
    save_every_steps: periodic save interval (the final step is always saved).
    keep: periodic checkpoints kept (newest first).
    keep_best: best checkpoints kept.
    async_save: let orbax write in the background.
  """

  save_every_steps: int = 500
  keep: int = 2
  keep_best: int = 1
  async_save: bool = False

  def __post_init__(self):
    if self.save_every_steps < 1 or self.keep < 1 or self.keep_best < 1:
      raise errors.ConfigError(
          f"CheckpointConfig values must be >= 1 (gin macros SAVE_EVERY_STEPS, "
          f"KEEP_CHECKPOINTS): {self}")


def abstract_like(tree: Any) -> Any:
  """`jax.ShapeDtypeStruct` tree (with shardings) to restore into the layout of `tree`."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _args_save(state, meta):
  return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))


def _args_restore(abstract_state):
  return ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                            meta=ocp.args.JsonRestore())


def _manager(directory: str, keep: int, async_save: bool) -> ocp.CheckpointManager:
  opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                      enable_async_checkpointing=async_save)
  return ocp.CheckpointManager(directory, options=opts, item_names=("state", "meta"))


def _state_dir(manager: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(os.fspath(manager.directory), str(step), "state")


def _restore_step(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
  shapes.check_compatible(_state_dir(manager, step), abstract_state)
  try:
    return manager.restore(step, args=_args_restore(abstract_state))
  except Exception as e:  # pylint: disable=broad-except
    shapes.raise_if_shape_error(_state_dir(manager, step), e)
    raise


def restore_with_fallback(manager: ocp.CheckpointManager, abstract_state: Any,
                          steps: list[int] | None = None, unreadable: list[int] | None = None
                          ) -> tuple[Any, dict, int] | None:
  """Restores the newest readable step; returns `(state, meta, step)` or None if no step.

  Steps that fail to restore (corrupt / partial files) are skipped with a warning and appended
  to `unreadable` if given. A shape mismatch raises `CheckpointMismatchError` instead.
  """
  steps = sorted(manager.all_steps() if steps is None else steps, reverse=True)
  errors = []
  for step in steps:
    try:
      restored = _restore_step(manager, step, abstract_state)
    except shapes.CheckpointMismatchError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      errors.append(f"step {step}: {type(e).__name__}: {str(e)[:300]}")
      if unreadable is not None:
        unreadable.append(step)
      logging.warning(
          "Checkpoint step %d in %s is unreadable (%s: %s); falling back to the previous "
          "good checkpoint.", step, manager.directory, type(e).__name__, str(e)[:300])
      continue
    if errors:
      logging.warning("Restored step %d from %s after skipping %d unreadable checkpoint(s).",
                      step, manager.directory, len(errors))
    return restored.state, dict(restored.meta), step
  if errors:
    raise RuntimeError(
        f"No readable checkpoint in {manager.directory}: " + "; ".join(errors)
        + ". Move or delete these step dirs to start the run afresh.")
  return None


# The checkpoint meta's best-checkpoint and early-stopping record, as a run starts it.
SELECTION_KEYS = {"best_f1": None, "best_step": None, "bad_evals": 0, "stopped_early": False}


def clear_selection(step_dir: str | os.PathLike) -> dict[str, Any]:
  """Clears the best-checkpoint and early-stopping record (`SELECTION_KEYS`) in the `meta` of
  the saved step `step_dir` (`MODEL_DIR/checkpoints/<step>`), keeping its params, optimiser
  state and step. For a run that continues these on other targets: the validation F1 recorded
  so far is of the old targets, so the run must pick its best checkpoint anew. Returns the new
  meta. A step dir without a readable meta is a FileNotFoundError / ValueError naming it."""
  import json  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.fspath(step_dir), "meta", "metadata")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no checkpoint meta to clear (is {step_dir} a step dir?)")
  with open(path) as f:
    try:
      meta = json.load(f)
    except ValueError as e:
      raise ValueError(f"{path}: checkpoint meta is not JSON: {e}") from None
  if not isinstance(meta, dict):
    raise ValueError(f"{path}: checkpoint meta is {type(meta).__name__}, not a JSON object")
  meta.update(SELECTION_KEYS)
  atomic_io.write_text(path, json.dumps(meta))
  return meta


def set_aside(manager: ocp.CheckpointManager, step: int) -> str:
  """Renames step dir `<step>` to `<step>.unreadable-<n>` (the first free n; nothing is
  deleted, orbax no longer lists it as a step) so that step can be saved again; returns the
  new path. The lead process renames, then all processes wait for it and re-list the steps."""
  src = os.path.join(os.fspath(manager.directory), str(step))
  n = 1
  while fileio.exists(f"{src}{UNREADABLE_INFIX}{n}"):
    n += 1
  dst = f"{src}{UNREADABLE_INFIX}{n}"
  if jax.process_index() == 0:
    fileio.replace(src, dst)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"persoma_set_aside_{step}")
  manager.reload()
  logging.warning("Moved unreadable checkpoint %s aside to %s; step %d will be saved anew.",
                  src, dst, step)
  return dst


class Checkpointer:
  """Periodic + best checkpoint managers for one model directory.

  Unreadable steps met on restore, or found in the way of a save of the same step, are moved
  aside (`set_aside`) so the retrained step is saved, not skipped.
  """

  def __init__(self, model_dir: str, config: CheckpointConfig = CheckpointConfig()):
    self.model_dir = fileio.absolute(model_dir)  # orbax restores only from absolute paths
    self.config = config
    self.latest = _manager(os.path.join(self.model_dir, LATEST_SUBDIR), config.keep,
                           config.async_save)
    self.best = _manager(os.path.join(self.model_dir, BEST_SUBDIR), config.keep_best,
                         config.async_save)

  def _save(self, manager: ocp.CheckpointManager, step: int, state: Any, meta: dict) -> bool:
    if step in manager.all_steps():
      manager.wait_until_finished()
      try:
        _restore_step(manager, step, abstract_like(state))
        return False  # a readable copy of this step is already there
      except shapes.CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("Existing checkpoint step %d in %s is unreadable (%s: %s).", step,
                        manager.directory, type(e).__name__, str(e)[:300])
        set_aside(manager, step)
    manager.save(step, args=_args_save(state, dict(meta, step=int(step))))
    return True

  def save(self, step: int, state: Any, meta: dict) -> bool:
    """Periodic save of `state` at `step` (no-op if a readable copy of that step exists)."""
    return self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state: Any, meta: dict) -> bool:
    """Saves a new best checkpoint (call only when validation F1 improved)."""
    return self._save(self.best, step, state, meta)

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def _restore(self, manager: ocp.CheckpointManager, abstract_state: Any
               ) -> tuple[Any, dict, int] | None:
    unreadable: list[int] = []
    out = restore_with_fallback(manager, abstract_state, unreadable=unreadable)
    for step in unreadable:
      set_aside(manager, step)
    return out

  def restore_latest(self, abstract_state: Any) -> tuple[Any, dict, int] | None:
    """Newest readable periodic checkpoint (unreadable newer ones set aside), or None for a
    fresh run."""
    return self._restore(self.latest, abstract_state)

  def restore_best(self, abstract_state: Any) -> tuple[Any, dict, int] | None:
    return self._restore(self.best, abstract_state)

  def close(self) -> None:
    self.wait()
    self.latest.close()
    self.best.close()


def restore_from_path(path: str, abstract_state: Any) -> tuple[Any, dict, int]:
  """Restores from a model dir (its best checkpoint, else its newest periodic one), a
  `checkpoints/` or `best/` dir, or a single step dir (`.../<step>` holding `state/`)."""
  path = os.fspath(path).rstrip("/")
  if not fileio.isdir(path):
    raise FileNotFoundError(f"checkpoint path {path!r} does not exist")
  if fileio.isdir(os.path.join(path, "state")):  # one step
    parent, name = os.path.split(path)
    if not name.isdigit():
      raise ValueError(f"checkpoint dir {path!r} holds state/ but is not named by a step")
    mgr = _manager(parent, 1000, False)
    try:
      restored = _restore_step(mgr, int(name), abstract_state)
    finally:
      mgr.close()
    return restored.state, dict(restored.meta), int(name)
  candidates = [os.path.join(path, BEST_SUBDIR), os.path.join(path, LATEST_SUBDIR), path]
  for c in candidates:
    if not fileio.isdir(c):
      continue
    mgr = _manager(c, 1000, False)
    try:
      if not mgr.all_steps():
        continue
      out = restore_with_fallback(mgr, abstract_state)
    finally:
      mgr.close()
    if out is not None:
      logging.info("Restored step %d from %s", out[2], c)
      return out
  raise FileNotFoundError(
      f"no checkpoint found under {path!r} (looked in {BEST_SUBDIR}/, {LATEST_SUBDIR}/ and "
      f"step directories)")


class PreemptionGuard:
  """Context manager: SIGTERM/SIGINT set `.requested` instead of killing the process.

  The training loop polls `requested` after every step, saves a checkpoint and exits.
  A second signal restores the default behaviour (kills immediately).
  """

  def __init__(self, signals=(signal.SIGTERM,)):
    self.signals = signals
    self.requested: int | None = None
    self._old = {}

  def _handle(self, signum, frame):
    del frame
    logging.warning("Received signal %d: will save a checkpoint and exit after this step.",
                    signum)
    self.requested = signum
    for s in self.signals:
      signal.signal(s, self._old.get(s, signal.SIG_DFL))

  def __enter__(self):
    try:
      for s in self.signals:
        self._old[s] = signal.signal(s, self._handle)
    except ValueError:  # not the main thread
      self._old = {}
    return self

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)
    return False


#: orbax's marker of a finished step on object stores (it writes those in place, no rename).
COMMIT_FILE = "commit_success.txt"


def _is_finished_step(step_dir: str) -> bool:
  return fileio.isdir(os.path.join(step_dir, "state")) and (
      not fileio.is_url(step_dir) or fileio.exists(os.path.join(step_dir, COMMIT_FILE)))


def _step_dirs(root: str) -> list[tuple[int, str]]:
  if not fileio.isdir(root):
    return []
  out = [(int(d), os.path.join(root, d)) for d in fileio.listdir(root)
         if d.isdigit() and _is_finished_step(os.path.join(root, d))]
  return sorted(out, reverse=True)


def candidate_step_dirs(path: str) -> list[tuple[int, str]]:
  """Step dirs to try for `path`, best first: a single step dir; else a model dir's `best/`
  steps then `checkpoints/` steps (newest first); else a `best/` or `checkpoints/` dir."""
  path = os.fspath(path).rstrip("/")
  if not fileio.isdir(path):
    raise FileNotFoundError(f"checkpoint path {path!r} does not exist")
  if fileio.isdir(os.path.join(path, "state")):
    name = os.path.basename(path)
    if not name.isdigit():
      raise ValueError(f"checkpoint dir {path!r} holds state/ but is not named by a step")
    return [(int(name), path)]
  out = (_step_dirs(os.path.join(path, BEST_SUBDIR)) + _step_dirs(os.path.join(path, LATEST_SUBDIR))
         + _step_dirs(path))
  if not out:
    raise FileNotFoundError(
        f"no checkpoint found under {path!r} (looked for {BEST_SUBDIR}/<step>, "
        f"{LATEST_SUBDIR}/<step> and <step> directories)")
  return out


def restore_params_from_path(path: str, abstract_params: Any) -> tuple[Any, int, str]:
  """Only the params (no optimizer state) from `path` (see `candidate_step_dirs`), falling
  back past unreadable steps (read-only: nothing is moved). Returns `(params, step, step_dir)`.
  Raises `CheckpointMismatchError` if the stored shapes differ from `abstract_params`."""
  item = {"params": abstract_params}
  errors = []
  for step, d in candidate_step_dirs(path):
    state_dir = os.path.join(d, "state")
    shapes.check_compatible(state_dir, item)  # another model: one clear error, no fallback
    try:
      ck = ocp.PyTreeCheckpointer()
      out = ck.restore(state_dir, args=ocp.args.PyTreeRestore(
          item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
          partial_restore=True))
    except Exception as e:  # corrupt / partial
      shapes.raise_if_shape_error(state_dir, e)
      errors.append(f"{d}: {type(e).__name__}: {str(e)[:300]}")
      logging.warning("Checkpoint %s is unreadable (%s: %s); trying the previous one.", d,
                      type(e).__name__, str(e)[:300])
      continue
    return out["params"], step, d
  raise RuntimeError(f"no readable checkpoint under {path!r}: " + "; ".join(errors))
