"""Reading T5X checkpoints (legacy msgpack + tensorstore, and orbax OCDBT) without t5x.

- `load_t5x_checkpoint(path) -> {'encoder/layers_0/attention/query/kernel': np.ndarray, ...}`:
  the params (`target/...`) of a T5X checkpoint, as flat `/`-joined paths. `path` may be a
  `checkpoint_N` dir (either format), its legacy `checkpoint` msgpack file, an orbax `state` dir,
  or a model dir holding `checkpoint_*` dirs (the highest step is used). `gs://` paths work when
  tensorstore can reach GCS.

Restoring them into a model's param tree: `persoma.models.restore.restore_params`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy for inline arrays)
import msgpack
import numpy as np

from persoma import fileio

logger = logging.getLogger(__name__)

T5_TOP_LEVEL = ("token_embedder", "encoder", "decoder")
LORA_LEAVES = ("lora_a", "lora_b")


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
