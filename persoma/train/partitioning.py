"""Device mesh, T5X-style logical axis rules and `jax.sharding` placement.

The mesh has two named axes, `data` (batch parallelism) and `model` (parameter/tensor
parallelism), sized from gin (`Partitioner.num_partitions` = size of `model`). Parameters carry
logical axis names (`nn.with_logical_partitioning`); `logical_axis_rules` map them to mesh axes,
giving a `NamedSharding` per parameter. Batches are split on their leading `[B, ...]` dimension
over `data`.

Multi-host: `maybe_initialize_distributed()` calls `jax.distributed.initialize()` when the
environment says the job spans several hosts (Cloud TPU VM pods set `TPU_WORKER_HOSTNAMES`
/ `MEGASCALE_*`; generic clusters set `JAX_COORDINATOR_ADDRESS`), or when
`PERSOMA_DISTRIBUTED=1`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from persoma import errors

DATA_AXIS = "data"
MODEL_AXIS = "model"

LogicalRules = Sequence[tuple[str, str | None]]

# T5X's standard rules (1-D parameter partitioning over `model`) plus persoma's extra names.
STANDARD_LOGICAL_AXIS_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", DATA_AXIS),
    ("vocab", MODEL_AXIS),
    ("embed", None),
    ("mlp", MODEL_AXIS),
    ("heads", MODEL_AXIS),
    ("kv", None),
    ("joined_kv", MODEL_AXIS),
    ("relpos_buckets", None),
    ("abspos_buckets", None),
    ("length", None),
    ("layers", None),
    ("stack", None),
    ("mlp_activations", None),
    # persoma-specific parameter axes: small, replicated.
    ("prompt", None),
    ("history_embed", None),
    ("latents", None),
    ("lora_rank", None),
    ("pool_channels", None),
    ("genres", None),
    ("stars", None),
    ("genre_embed", None),
    ("length_features", None),
    ("probe_outputs", None),
)

_MULTIHOST_ENV = ("JAX_COORDINATOR_ADDRESS", "MEGASCALE_COORDINATOR_ADDRESS")


def maybe_initialize_distributed(env: Mapping[str, str] | None = None) -> bool:
  """Calls `jax.distributed.initialize()` if the environment describes a multi-host job.

  Returns True when initialisation was performed. Must run before any other jax call.
  """
  env = os.environ if env is None else env
  wanted = env.get("PERSOMA_DISTRIBUTED", "")
  if wanted == "0":
    return False
  hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
  multihost = (
      wanted == "1" or len(hosts) > 1 or any(env.get(k) for k in _MULTIHOST_ENV)
  )
  if not multihost:
    return False
  logging.info("Multi-host environment detected: calling jax.distributed.initialize()")
  jax.distributed.initialize()
  logging.info(
      "jax.distributed: process %d of %d, %d local / %d global devices",
      jax.process_index(), jax.process_count(), jax.local_device_count(),
      jax.device_count())
  return True


@dataclasses.dataclass
class Partitioner:
  """Builds the `data` x `model` mesh and places params and batches on it.

  Attributes:
    num_partitions: size of the `model` axis (1 = pure data parallelism).
    num_data: size of the `data` axis; None -> all remaining devices.
    logical_axis_rules: logical axis name -> mesh axis (None = replicated).
    devices: explicit devices (default: `jax.devices()`).
  """

  num_partitions: int = 1
  num_data: int | None = None
  logical_axis_rules: LogicalRules = STANDARD_LOGICAL_AXIS_RULES
  devices: Sequence[Any] | None = None

  def __post_init__(self):
    devices = list(self.devices) if self.devices is not None else jax.devices()
    n = len(devices)
    if self.num_partitions < 1 or n % self.num_partitions:
      raise errors.ConfigError(
          f"Partitioner.num_partitions={self.num_partitions} (gin macro NUM_PARTITIONS) must "
          f"divide the device count {n}")
    num_data = n // self.num_partitions if self.num_data is None else self.num_data
    if num_data * self.num_partitions != n:
      raise errors.ConfigError(
          f"Partitioner: num_data={num_data} x num_partitions={self.num_partitions} != "
          f"{n} devices")
    grid = np.asarray(devices, dtype=object).reshape(num_data, self.num_partitions)
    self.mesh = Mesh(grid, (DATA_AXIS, MODEL_AXIS))
    logging.info("Mesh: %s=%d x %s=%d over %d %s device(s)", DATA_AXIS, num_data, MODEL_AXIS,
                 self.num_partitions, n, getattr(devices[0], "platform", "?"))
    self.logical_axis_rules = tuple(tuple(r) for r in self.logical_axis_rules)

  @property
  def data_size(self) -> int:
    return self.mesh.shape[DATA_AXIS]

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def check_batch_size(self, batch_size: int, what: str = "batch_size") -> None:
    if batch_size % self.data_size:
      raise errors.ConfigError(
          f"{what}={batch_size} must be divisible by the data axis size {self.data_size} "
          f"(devices {jax.device_count()}, num_partitions {self.num_partitions})")

  # ---- parameters -------------------------------------------------------------------
  def logical_specs(self, boxed_tree: Any) -> Any:
    """Tree of logical `PartitionSpec`s for a tree that may hold `nn.Partitioned` boxes."""
    return nn.get_partition_spec(boxed_tree)

  def shardings_for(self, boxed_tree: Any) -> Any:
    """`NamedSharding` per leaf of an (abstract, possibly boxed) tree, from logical names.

    Unboxed leaves (no logical names) are replicated. Returns the unboxed tree structure.
    """
    specs = self.logical_specs(boxed_tree)
    unboxed = nn.unbox(boxed_tree)

    def to_sharding(spec, leaf):
      if not isinstance(spec, PartitionSpec):
        spec = PartitionSpec()
      mesh_spec = logical_to_mesh_spec(tuple(spec), self.logical_axis_rules)
      mesh_spec = _drop_indivisible(mesh_spec, getattr(leaf, "shape", ()), self.mesh)
      return NamedSharding(self.mesh, mesh_spec)

    return jax.tree.map(to_sharding, specs, unboxed,
                        is_leaf=lambda x: isinstance(x, PartitionSpec))

  def opt_state_shardings(self, abstract_opt_state: Any, abstract_params: Any,
                          param_shardings: Any) -> Any:
    """Shardings for an optimizer state: a leaf whose key path ends with a parameter's
    path and has that parameter's shape gets the parameter's sharding (Adam moments,
    ...); everything else (counts, factored moments) is replicated."""
    by_path = {}
    for (path, leaf), sh in zip(jax.tree_util.tree_flatten_with_path(abstract_params)[0],
                                jax.tree.leaves(param_shardings)):
      by_path[_path_key(path)] = (tuple(leaf.shape), sh)

    def pick(path, leaf):
      keys = _path_key(path)
      shape = tuple(getattr(leaf, "shape", ()))
      for start in range(len(keys)):
        hit = by_path.get(keys[start:])
        if hit is not None and hit[0] == shape:
          return hit[1]
      return self.replicated

    return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)

  # ---- batches -----------------------------------------------------------------------
  def batch_sharding(self, ndim: int) -> NamedSharding:
    """Leading dim over `data`, rest replicated: `[B, ...]` -> P('data', None, ...)."""
    return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS, *([None] * (ndim - 1))))

  def shard_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """Places a host-local batch (`[B_local, ...]` per key) as global `[B, ...]` arrays."""
    out = {}
    for k, v in batch.items():
      v = np.asarray(v)
      out[k] = jax.make_array_from_process_local_data(self.batch_sharding(v.ndim), v)
    return out


def logical_to_mesh_spec(names: Sequence[str | None], rules: LogicalRules) -> PartitionSpec:
  """Logical axis names -> mesh `PartitionSpec` by the first matching rule. A mesh axis is
  used at most once per array (a repeated one, e.g. an `('mlp', 'mlp')` kernel, is replicated
  on its later dims); unknown names are replicated."""
  table: dict[str, str | None] = {}
  for name, axis in rules:
    table.setdefault(name, axis)
  used, out = set(), []
  for n in names:
    axis = table.get(n) if n is not None else None
    if axis is not None and axis in used:
      axis = None
    if axis is not None:
      used.add(axis)
    out.append(axis)
  return PartitionSpec(*out)


def _path_key(path) -> tuple[str, ...]:
  out = []
  for p in path:
    for attr in ("key", "name", "idx"):
      if hasattr(p, attr):
        out.append(str(getattr(p, attr)))
        break
    else:
      out.append(str(p))
  return tuple(out)


def _drop_indivisible(spec: PartitionSpec, shape, mesh: Mesh) -> PartitionSpec:
  """Replicates dims whose size is not divisible by their mesh axis (with a log line)."""
  parts = list(spec) + [None] * (len(shape) - len(spec))
  for i, (axis, size) in enumerate(zip(parts, shape)):
    if axis is None:
      continue
    axes = axis if isinstance(axis, tuple) else (axis,)
    n = int(np.prod([mesh.shape[a] for a in axes]))
    if size % n:
      logging.warning("dim %d of shape %s not divisible by mesh axis %s (%d): replicated",
                      i, shape, axis, n)
      parts[i] = None
  return PartitionSpec(*parts[:len(shape)])
