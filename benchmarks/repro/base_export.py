"""The task-adapted base for frozen and LoRA runs: a finished run's best T5 params written as a
T5X-layout orbax checkpoint that `INITIAL_CHECKPOINT_PATH` accepts (group 5's dependants start
from it)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path


def best_state_dir(model_dir: Path) -> tuple[Path, int]:
  """`best/<step>/state` of a finished run (the newest best step)."""
  best = model_dir / "best"
  steps = sorted(int(p.name) for p in best.iterdir() if p.name.isdigit()) if best.is_dir() \
      else []
  if not steps:
    raise FileNotFoundError(f"no best checkpoint under {best}")
  return best / str(steps[-1]) / "state", steps[-1]


def export_base(model_dir: Path, out_root: Path) -> Path:
  """Writes the T5 params of a persoma run's best checkpoint as a T5X-layout orbax checkpoint
  (`{'target': params}`) that INITIAL_CHECKPOINT_PATH accepts; returns `.../checkpoint_<step>`.

  Only the T5 backbone (token_embedder/, encoder/, decoder/) is exported: the adapter, task
  prompt and LoRA factors of the dependent run start fresh.
  """
  with _EXPORT_LOCK:  # dependants started together (--jobs > 1) share the export
    return _export_base(model_dir, out_root)


_EXPORT_LOCK = threading.Lock()


def _export_base(model_dir: Path, out_root: Path) -> Path:
  state_dir, step = best_state_dir(model_dir)
  out = out_root / f"checkpoint_{step}"
  if (out / "_METADATA").exists():
    return out
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from persoma.models import checkpoints  # pylint: disable=g-import-not-at-top
  flat = checkpoints.load_t5x_checkpoint(str(state_dir), prefix="params")
  keep = {tuple(k.split("/")): v for k, v in flat.items()
          if k.split("/", 1)[0] in checkpoints.T5_TOP_LEVEL
          and k.rsplit("/", 1)[-1] not in checkpoints.LORA_LEAVES}
  if not keep:
    raise ValueError(f"{state_dir}: no T5 params to export")
  tmp = out_root / f".tmp_checkpoint_{step}_{os.getpid()}_{threading.get_ident()}"
  out_root.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(tmp.resolve(), {"target": traverse_util.unflatten_dict(keep)})
  try:
    os.replace(tmp, out)
  except OSError:  # another process exported the same checkpoint first: keep its copy
    if not (out / "_METADATA").exists():
      raise
    shutil.rmtree(tmp, ignore_errors=True)
  return out
