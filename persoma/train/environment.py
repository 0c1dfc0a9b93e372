"""What a training run ran on, recorded beside its checkpoints.

Two runs of one configuration and seed give the same numbers only on the same kind of host with
the same device layout and the same item embeddings: XLA compiles its CPU kernels for the host's
instruction set, the sentence encoder's embeddings are computed once per machine into the
embedding cache, and the mesh decides how a batch is reduced. None of these is part of the run's
configuration, so `persoma-train` writes them to ``MODEL_DIR/environment.json``, the record of
the trajectory that leads to the run's checkpoint: an entry with the step it started from for the
first start and for each resume whose environment differs from the last entry's. A start at
step s first drops the entries from step s on (nothing they ran was kept: a restart before the
first checkpoint, or a fallback to an older one). A resume on another host logs which fields
changed. On a multi-host slice the entry is the lead host's.

Fields of an entry (`describe`): ``cpu`` (model name), ``isa`` (the vector extensions XLA can
use), ``cpus`` (logical CPUs), ``cores`` (how many this process may run on) and ``affinity``
(which: informational, not compared, as a pinned run may resume on another core), ``backend``,
``device_kind``, ``devices``, ``processes``, ``mesh`` (``{"data": d, "model": m}``),
``xla_flags``, ``versions`` (python, jax, jaxlib, flax, optax, numpy) and ``embeddings`` (the
embedding table the task reads: encoder, cache file name, whether standardized, shape and the
sha256 of the array; None for a text-prompting task).
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Mapping

import numpy as np

from persoma import atomic_io
from persoma import fileio
from persoma.embeddings import cache

FILENAME = "environment.json"
# Vector extensions that change which kernels XLA:CPU emits (from /proc/cpuinfo's flags).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
             "avx512_vnni", "amx_bf16", "amx_tile", "asimd", "sve")
# Entry keys ignored when comparing two entries: when, not what, and which cores (their count
# is compared).
VOLATILE = ("started_at", "step", "affinity")


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, list[str]]:
  """(CPU model name, the `ISA_FLAGS` it has) from `path`, or `platform.processor()` and []
  where the file does not exist (macOS)."""
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      text = f.read()
  except OSError:
    return platform.processor() or platform.machine(), []
  model, flags = "", set()
  for line in text.splitlines():
    key, _, value = line.partition(":")
    key = key.strip().lower()
    if key in ("model name", "cpu model") and not model:
      model = value.strip()
    elif key in ("flags", "features") and not flags:
      flags = set(value.split())
  return model or platform.machine(), [f for f in ISA_FLAGS if f in flags]


def table_digest(table: np.ndarray) -> str:
  """sha256 hex of a float32 `[V, D]` table's bytes (the embedding cache's checksum)."""
  return cache.checksum(table)


def _versions() -> dict[str, str]:
  """Installed versions of python and the libraries the numbers depend on."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  out = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "numpy"):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = "absent"
  return out


def describe(mesh_shape: Mapping[str, int] | None = None,
             embeddings: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """This process's environment (see the module docstring for the fields).

  Args:
    mesh_shape: the partitioner's mesh axis sizes (`Partitioner.mesh.shape`).
    embeddings: what identifies the embedding table the task reads (None: no table).
  """
  import jax  # pylint: disable=g-import-not-at-top
  model, isa = cpu_info()
  devices = jax.devices()
  affinity = (sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else list(range(os.cpu_count() or 1)))
  return {
      "cpu": model, "isa": isa, "cpus": os.cpu_count(), "cores": len(affinity),
      "affinity": affinity,
      "backend": jax.default_backend(), "device_kind": devices[0].device_kind,
      "devices": len(devices), "processes": jax.process_count(),
      "mesh": {str(k): int(v) for k, v in (mesh_shape or {}).items()},
      "xla_flags": os.environ.get("XLA_FLAGS", ""), "versions": _versions(),
      "embeddings": dict(embeddings) if embeddings is not None else None,
  }


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
  """Sorted keys whose values differ between two entries (`VOLATILE` keys ignored)."""
  keys = (set(a) | set(b)) - set(VOLATILE)
  return sorted(k for k in keys if a.get(k) != b.get(k))


def read(model_dir: str) -> list[dict[str, Any]]:
  """The entries of `model_dir`'s environment file ([] when there is none).

  Raises ValueError naming the file when it is not a JSON list of objects with an integer
  'step' each.
  """
  path = os.path.join(model_dir, FILENAME)
  if not fileio.exists(path):
    return []
  try:
    with fileio.open(path) as f:
      obj = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: not readable as JSON ({e}); move it aside to continue "
                     "(it only records where the run ran)") from None
  if not isinstance(obj, list):
    raise ValueError(f"{path}: expected a JSON list of entries, got a {type(obj).__name__}; "
                     "move it aside to continue")
  for i, e in enumerate(obj):
    if not isinstance(e, dict) or not isinstance(e.get("step"), int):
      raise ValueError(f"{path}: entry {i} is not an object with an integer 'step' "
                       f"({json.dumps(e)[:80]}); move the file aside to continue")
  return obj


Entries = list[dict[str, Any]]


def record(model_dir: str, env: Mapping[str, Any], step: int) -> tuple[Entries, list[str]]:
  """Records that the run starts at `step` in `env`; returns (the entries now on disk, the keys
  in which `env` differs from the entry it follows: [] for the first entry or an unchanged one).

  Entries from `step` on are dropped first (their steps were not kept); `env` is appended
  unless it equals the last remaining entry. The file is rewritten only when that changes it.
  Call it from the lead process only (the file is shared on a multi-host slice).
  Raises ValueError (unreadable file) or OSError (unwritable).
  """
  old = read(model_dir)
  entries = [e for e in old if e["step"] < int(step)]
  changed = differences(entries[-1], env) if entries else []
  if not entries or changed:
    entries.append({"started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "step": int(step), **env})
  if entries != old:
    atomic_io.write_text(os.path.join(model_dir, FILENAME),
                         json.dumps(entries, indent=2, sort_keys=True) + "\n")
  return entries, changed


def summary_line(env: Mapping[str, Any]) -> str:
  """One log line: CPU and its vector extensions, devices and mesh, cores, the first 16 hex
  digits of the embedding table's sha256."""
  emb = env.get("embeddings") or {}
  mesh = " x ".join(f"{k} {v}" for k, v in (env.get("mesh") or {}).items()) or "-"
  isa = ",".join(env.get("isa") or []) or "-"
  cores = env.get("affinity") or []
  if len(cores) == env.get("cpus"):
    cores_text = f"all {len(cores)} cores"
  else:
    cores_text = ("core " if len(cores) == 1 else "cores ") + ",".join(str(c) for c in cores)
  return (f"{env.get('cpu')} [{isa}], {env.get('devices')} {env.get('backend')} device(s), "
          f"mesh {mesh}, {cores_text}, embeddings {emb.get('sha256', '-')[:16]}")
