"""Same training steps on 1 CPU device and on 8 simulated CPU devices (4 x 2 data x model
mesh) give the same losses and parameters within float tolerance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import standin_run

HERE = Path(__file__).resolve().parent


def test_one_vs_eight_devices_same_losses(tmp_path):
  one, params_one = standin_run.main([str(tmp_path / "one"), "--steps=8", "--plain"])
  assert one["devices"] == 1
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, str(HERE / "standin_run.py"), str(tmp_path / "eight"), "--steps=8",
       "--num_partitions=2", "--plain"], env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  eight = json.loads(proc.stdout.strip().splitlines()[-1])
  # Really sharded: 4 x 2 mesh, params split over `model`, batch split over `data`.
  assert eight["devices"] == 8 and eight["mesh"] == {"data": 4, "model": 2}
  assert eight["param_specs"]["token_embedder"] == "P('model', None)"
  assert eight["param_specs"]["wi"] == "P(None, 'model')"
  assert eight["batch_spec"].startswith("P('data'")
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=2e-5, atol=2e-6)
  assert one["losses"][-1] < one["losses"][0]  # it trained
  final8 = np.load(tmp_path / "eight" / "final_params.npz")
  import jax  # pylint: disable=g-import-not-at-top
  for i, x in enumerate(jax.tree.leaves(params_one)):
    np.testing.assert_allclose(final8[f"p{i}"], x, rtol=1e-4, atol=1e-5)


def test_one_vs_eight_devices_real_persoma_model(tmp_path):
  """The same check with the real PersomaModel (tiny T5 + mlp adapter + task prompt)."""
  one, params_one = standin_run.main([str(tmp_path / "one"), "--steps=4", "--plain", "--real"])
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, str(HERE / "standin_run.py"), str(tmp_path / "eight"), "--steps=4",
       "--num_partitions=2", "--plain", "--real"], env=env, capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  eight = json.loads(proc.stdout.strip().splitlines()[-1])
  assert eight["devices"] == 8 and eight["mesh"] == {"data": 4, "model": 2}
  # T5X logical rules: the vocab axis of the shared embedding and the mlp axis go to `model`.
  assert eight["param_specs"]["token_embedder/embedding"] == "P('model', None)"
  assert eight["param_specs"]["encoder/layers_0/mlp/wi_0/kernel"] == "P(None, 'model')"
  assert eight["batch_spec"].startswith("P('data'")
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=2e-5, atol=2e-5)
  assert one["losses"][-1] < one["losses"][0]
  final8 = np.load(tmp_path / "eight" / "final_params.npz")
  import jax  # pylint: disable=g-import-not-at-top
  for i, x in enumerate(jax.tree.leaves(params_one)):
    np.testing.assert_allclose(final8[f"p{i}"], x, rtol=1e-4, atol=1e-5)
