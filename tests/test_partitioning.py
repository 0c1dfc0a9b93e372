"""Mesh construction, logical axis rules -> NamedSharding, batch placement, multi-host env."""

import logging

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import standin
from persoma.train import partitioning


def _abstract_boxed():
  model = standin.StandinModel()
  arrays = standin.make_split(4, 0)[0]
  shapes = {k: v.shape for k, v in arrays.items()}
  types = {k: v.dtype for k, v in arrays.items()}
  return jax.eval_shape(lambda r: model.get_initial_variables(r, shapes, types)["params"],
                        jax.random.PRNGKey(0))


def test_mesh_axes_and_param_shardings_follow_logical_rules(caplog):
  with caplog.at_level(logging.INFO):
    part = partitioning.Partitioner()
  n = jax.device_count()
  assert f"Mesh: data={n} x model=1 over {n} cpu device(s)" in caplog.text  # the runner logs it
  assert part.mesh.axis_names == ("data", "model")
  assert part.mesh.shape == {"data": jax.device_count(), "model": 1}
  sh = part.shardings_for(_abstract_boxed())
  assert sh["token_embedder"].spec == P("model", None)        # ('vocab', 'embed')
  assert sh["wi"].spec == P(None, "model")                    # ('embed', 'mlp')
  assert sh["adapter"]["kernel"].spec == P(None, None)        # ('history_embed', 'embed')


def test_logical_to_mesh_spec_uses_each_mesh_axis_once():
  rules = partitioning.STANDARD_LOGICAL_AXIS_RULES
  assert partitioning.logical_to_mesh_spec(("mlp", "mlp"), rules) == P("model", None)
  assert partitioning.logical_to_mesh_spec(("embed", "heads", "kv"), rules) == P(
      None, "model", None)
  assert partitioning.logical_to_mesh_spec(("unknown_name", None), rules) == P(None, None)


def test_custom_rules_replicate_everything():
  part = partitioning.Partitioner(logical_axis_rules=(("vocab", None), ("mlp", None)))
  sh = part.shardings_for(_abstract_boxed())
  assert sh["token_embedder"].spec == P(None, None) and sh["wi"].spec == P(None, None)


def test_opt_state_follows_param_shardings():
  import optax
  part = partitioning.Partitioner()
  boxed = _abstract_boxed()
  import flax.linen as nn
  params = nn.unbox(boxed)
  psh = part.shardings_for(boxed)
  opt = jax.eval_shape(optax.adam(1e-3).init, params)
  osh = part.opt_state_shardings(opt, params, psh)
  mu = osh[0].mu
  assert mu["token_embedder"].spec == P("model", None) and mu["wi"].spec == P(None, "model")
  assert osh[0].count.spec == P()


def test_batch_sharding_and_bad_sizes():
  part = partitioning.Partitioner()
  batch = part.shard_batch({"x": np.arange(8, dtype=np.int32).reshape(4, 2)})
  assert batch["x"].shape == (4, 2) and batch["x"].sharding.spec == P("data", None)
  np.testing.assert_array_equal(np.asarray(batch["x"]), np.arange(8).reshape(4, 2))
  with pytest.raises(ValueError, match="num_partitions=3"):
    partitioning.Partitioner(num_partitions=3 * jax.device_count())
  part.check_batch_size(jax.device_count() * 2)


def test_distributed_init_only_when_environment_says_so(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append(1))
  assert not partitioning.maybe_initialize_distributed({})
  assert not partitioning.maybe_initialize_distributed({"TPU_WORKER_HOSTNAMES": "localhost"})
  assert not partitioning.maybe_initialize_distributed(
      {"PERSOMA_DISTRIBUTED": "0", "JAX_COORDINATOR_ADDRESS": "h:1"})
  assert calls == []
  monkeypatch.setattr(jax, "process_index", lambda: 0)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  assert partitioning.maybe_initialize_distributed({"TPU_WORKER_HOSTNAMES": "a,b"})
  assert partitioning.maybe_initialize_distributed({"JAX_COORDINATOR_ADDRESS": "h:1234"})
  assert calls == [1, 1]
