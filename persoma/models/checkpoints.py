"""Reading T5X checkpoints (legacy msgpack + tensorstore, and orbax OCDBT) without t5x.

- `load_t5x_checkpoint(path) -> {'encoder/layers_0/attention/query/kernel': np.ndarray, ...}`:
  the params (`target/...`) of a T5X checkpoint, as flat `/`-joined paths. `path` may be a
  `checkpoint_N` dir (either format), its legacy `checkpoint` msgpack file, an orbax `state` dir,
  or a model dir holding `checkpoint_*` dirs (the highest step is used). `gs://` paths work when
  tensorstore can reach GCS.
- `restore_params(template, path) -> (params, RestoreReport)`: partial restore into a param tree
  (e.g. `variables['params']` from `model.init`): T5 params come from the checkpoint, params the
  checkpoint lacks (adapter, task prompt, LoRA) keep the template's fresh values and are reported
  by name; shape mismatches and different architectures are errors.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any, Iterable

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy for inline arrays)
import msgpack
import numpy as np

from persoma import fileio

logger = logging.getLogger(__name__)

T5_TOP_LEVEL = ("token_embedder", "encoder", "decoder")
LORA_LEAVES = ("lora_a", "lora_b")
_LAYER_RE = re.compile(r"^(encoder|decoder)/layers_(\d+)/")


class CheckpointError(ValueError):
  """A checkpoint that is missing, unreadable, corrupt, or does not fit the model."""


# ----------------------------------------------------------------------------- locating

def _is_gcs(path: str) -> bool:
  return path.startswith("gs://")


def _join(base: str, *parts: str) -> str:
  out = base.rstrip("/")
  for p in parts:
    out = out + "/" + p.strip("/")
  return out


def _gcs_kvstore(path: str) -> dict:
  bucket, _, key = path[len("gs://"):].partition("/")
  return {"driver": "gcs", "bucket": bucket, "path": key}


def _kvstore(path: str) -> dict:
  """tensorstore kvstore spec for a local or gs:// directory/file path."""
  return _gcs_kvstore(path) if _is_gcs(path) else {"driver": "file", "path": os.path.abspath(path)}


def _read_bytes(path: str) -> bytes | None:
  """File content, or None if it does not exist."""
  if not _is_gcs(path):
    if not os.path.isfile(path):
      return None
    with open(path, "rb") as f:
      return f.read()
  import tensorstore as ts
  parent, _, name = path.rpartition("/")
  store = ts.KvStore.open(_gcs_kvstore(parent + "/")).result()
  result = store.read(name).result()
  return None if result.state == "missing" else bytes(result.value)


def _list_checkpoint_steps(path: str) -> list[tuple[int, str]]:
  if not fileio.isdir(path):
    return []
  steps = []
  for name in fileio.listdir(path):
    m = re.fullmatch(r"checkpoint_(\d+)", name)
    if m and fileio.isdir(_join(path, name)):
      steps.append((int(m.group(1)), _join(path, name)))
  return sorted(steps)


@dataclasses.dataclass(frozen=True)
class CheckpointLocation:
  """`format` is 'legacy' (then `path` is the msgpack file) or 'orbax' (`path` is `state/`)."""

  format: str
  path: str
  checkpoint_dir: str


def locate_checkpoint(path: str | os.PathLike) -> CheckpointLocation:
  """Detects the checkpoint format at `path` (see module docstring for accepted forms)."""
  path = os.fspath(path).rstrip("/") if not os.fspath(path) == "/" else "/"
  if not _is_gcs(path) and not os.path.exists(path):
    raise CheckpointError(f"No checkpoint at {path!r}: the path does not exist")
  if not _is_gcs(path) and os.path.isfile(path):
    if os.path.basename(path) == "checkpoint":
      return CheckpointLocation("legacy", path, os.path.dirname(path) or ".")
    if os.path.basename(path) == "_METADATA":
      return CheckpointLocation("orbax", os.path.dirname(path) or ".", os.path.dirname(path))
    raise CheckpointError(f"{path!r} is a file but not a T5X checkpoint (expected a legacy "
                          "'checkpoint' msgpack file or a checkpoint_N directory)")
  candidates = [
      ("legacy", _join(path, "checkpoint"), path, None),
      ("orbax", _join(path, "state"), path, _join(path, "state", "_METADATA")),
      ("orbax", path, os.path.dirname(path), _join(path, "_METADATA")),
  ]
  for fmt, loc, ckpt_dir, marker in candidates:
    probe = loc if marker is None else marker
    if _is_gcs(path):
      if _read_bytes(probe) is not None:
        return CheckpointLocation(fmt, loc, ckpt_dir)
    elif os.path.isfile(probe):
      return CheckpointLocation(fmt, loc, ckpt_dir)
  steps = _list_checkpoint_steps(path)
  if steps:
    step, latest = steps[-1]
    logger.info("Using the latest checkpoint in %s: checkpoint_%d", path, step)
    return locate_checkpoint(latest)
  raise CheckpointError(
      f"No T5X checkpoint found at {path!r}: expected a legacy 'checkpoint' msgpack file, an "
      "orbax 'state/_METADATA', or checkpoint_N subdirectories")


# ----------------------------------------------------------------------------- array reading

def _read_zarr_arrays(jobs: dict[str, tuple[dict, str]]) -> dict[str, np.ndarray]:
  """Reads `{name: (tensorstore spec, description)}` concurrently -> `{name: array}`."""
  import tensorstore as ts

  def fail(what, e):
    return CheckpointError(f"Could not read {what}: {e}")

  opened = {}
  for name, (spec, what) in jobs.items():
    try:
      opened[name] = (ts.open(spec, open=True, read=True), what)
    except Exception as e:  # invalid spec
      raise fail(what, e) from e
  reads = {}
  for name, (future, what) in opened.items():
    try:
      reads[name] = (future.result().read(), what)
    except Exception as e:  # missing/corrupt .zarray, unreachable store
      raise fail(what, e) from e
  out = {}
  for name, (future, what) in reads.items():
    try:
      out[name] = np.asarray(future.result())
    except Exception as e:  # corrupt or missing chunk data
      raise fail(what, e) from e
  return out


def _legacy_spec(spec: dict, checkpoint_dir: str, name: str) -> tuple[dict, str]:
  """The spec to open a tensorstore-backed leaf of a legacy checkpoint. Accepts the local form
  (`kvstore: {driver: file, path: <rel>}`) and the gcs form (`kvstore: {driver: gcs, bucket},
  path: <rel>`); relative paths are resolved against the checkpoint dir."""
  kv = spec.get("kvstore", {})
  rel = kv.get("path") or spec.get("path")
  if not isinstance(rel, str) or not rel:
    raise CheckpointError(f"{name}: tensorstore spec has no path: {spec}")
  if rel.startswith("gs://") or os.path.isabs(rel):
    location = rel
  else:
    location = _join(checkpoint_dir, rel)
  open_spec = {"driver": spec.get("driver", "zarr"),
               "kvstore": _kvstore(location.rstrip("/") + "/")}
  return open_spec, f"param {name!r} from {location}"


def _ext_hook(code: int, data: bytes) -> Any:
  if code == 1:  # ndarray: [shape, dtype name, C-order bytes]
    shape, dtype, buf = msgpack.unpackb(data, raw=False)
    return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape).copy()
  if code == 3:  # numpy scalar: [dtype name, bytes]
    dtype, buf = msgpack.unpackb(data, raw=False)
    return np.frombuffer(buf, dtype=np.dtype(dtype))[0]
  if code == 2:  # native complex
    re_, im = msgpack.unpackb(data, raw=False)
    return complex(re_, im)
  return msgpack.ExtType(code, data)


def _is_ts_spec(node: Any) -> bool:
  return isinstance(node, dict) and "driver" in node and ("kvstore" in node or "path" in node)


def _flatten(node: Any, prefix: str, out: dict[str, Any]) -> None:
  if isinstance(node, dict) and not _is_ts_spec(node) and "__msgpack_chunked_array__" not in node:
    for k, v in node.items():
      _flatten(v, f"{prefix}/{k}" if prefix else str(k), out)
  else:
    out[prefix] = node


def _unchunk(node: dict) -> np.ndarray:
  chunks = node["chunks"]
  return np.concatenate([np.asarray(chunks[str(i)]).ravel() for i in range(len(chunks))]
                        ).reshape(tuple(node["shape"]))


def _load_legacy(loc: CheckpointLocation, prefix: str) -> dict[str, np.ndarray]:
  raw = _read_bytes(loc.path)
  if raw is None:
    raise CheckpointError(f"No legacy checkpoint file at {loc.path!r}")
  try:
    tree = msgpack.unpackb(raw, raw=False, strict_map_key=False, ext_hook=_ext_hook)
  except Exception as e:
    raise CheckpointError(f"{loc.path}: not a valid T5X msgpack checkpoint ({e})") from e
  if not isinstance(tree, dict) or "optimizer" not in tree:
    keys = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
    raise CheckpointError(f"{loc.path}: not a T5X checkpoint (top-level keys {keys}, "
                          "expected 'optimizer')")
  state = tree["optimizer"]
  if prefix not in state:
    raise CheckpointError(f"{loc.path}: no '{prefix}' entry (found {sorted(state)})")
  flat: dict[str, Any] = {}
  _flatten(state[prefix], "", flat)
  out, jobs = {}, {}
  for name, leaf in flat.items():
    if _is_ts_spec(leaf):
      jobs[name] = _legacy_spec(leaf, loc.checkpoint_dir, name)
    elif isinstance(leaf, dict):
      out[name] = _unchunk(leaf)
    else:
      out[name] = np.asarray(leaf)
  out.update(_read_zarr_arrays(jobs))
  for name, leaf in flat.items():
    want = (leaf.get("metadata") or {}).get("shape") if _is_ts_spec(leaf) else None
    if want is not None and tuple(want) != out[name].shape:
      raise CheckpointError(f"{name}: stored array has shape {out[name].shape} but the "
                            f"checkpoint msgpack says {tuple(want)} (corrupt checkpoint?)")
  return {name: out[name] for name in flat}


def _load_orbax(loc: CheckpointLocation, prefix: str) -> dict[str, np.ndarray]:
  meta_path = _join(loc.path, "_METADATA")
  raw = _read_bytes(meta_path)
  if raw is None:
    raise CheckpointError(f"No orbax metadata at {meta_path!r}")
  try:
    meta = json.loads(raw)
    tree = meta["tree_metadata"]
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{meta_path}: unreadable orbax metadata ({e!r})") from e
  driver = "zarr3" if meta.get("use_zarr3") else "zarr"
  ocdbt = bool(meta.get("use_ocdbt", False))
  base = _kvstore(loc.path.rstrip("/") + "/")
  jobs = {}
  for entry in tree.values():
    keys = [str(k["key"]) for k in entry.get("key_metadata", [])]
    if not keys or keys[0] != prefix:
      continue
    dotted = ".".join(keys)
    if ocdbt:
      kv = {"driver": "ocdbt", "base": base, "path": dotted}
    else:
      kv = _kvstore(_join(loc.path, dotted) + "/")
    name = "/".join(keys[1:])
    jobs[name] = ({"driver": driver, "kvstore": kv}, f"param {name!r} from {loc.path}")
  if not jobs:
    raise CheckpointError(f"{meta_path}: no '{prefix}/...' arrays in the orbax tree metadata")
  return _read_zarr_arrays(jobs)


def load_t5x_checkpoint(path: str | os.PathLike, prefix: str = "target"
                        ) -> dict[str, np.ndarray]:
  """The `prefix` subtree ('target' = params) of a T5X checkpoint as `{'a/b/kernel': array}`."""
  loc = locate_checkpoint(path)
  logger.info("Reading %s T5X checkpoint %s", loc.format, loc.path)
  if loc.format == "legacy":
    return _load_legacy(loc, prefix)
  return _load_orbax(loc, prefix)


# ----------------------------------------------------------------------------- partial restore

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
