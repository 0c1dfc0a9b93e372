"""orbax checkpoints: round trip, keep-N, best, corrupt/partial fallback (the unreadable step set
aside so it can be saved again), shape mismatch told apart from corruption, restore from a model
dir or one step dir, params-only restore, SIGTERM guard."""

import logging
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from persoma.train import checkpointing as ck


def _state(v=1.0):
  params = {"a": jnp.full((4, 2), v), "b": {"c": jnp.arange(3.0) * v}}
  return {"step": jnp.int32(0), "params": params, "opt_state": optax.adam(1e-3).init(params)}


def test_round_trip_keep_n_and_best(tmp_path):
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(save_every_steps=1, keep=2))
  for step in (1, 2, 3):
    assert c.save(step, _state(step), {"best_f1": 0.1 * step})
  assert not c.save(3, _state(3), {})  # same step twice: no-op
  c.save_best(2, _state(2), {"best_f1": 0.2})
  c.wait()
  assert c.latest.all_steps() == [2, 3]
  state, meta, step = c.restore_latest(ck.abstract_like(_state()))
  assert step == 3 and meta["best_f1"] == pytest.approx(0.3) and meta["step"] == 3
  np.testing.assert_array_equal(state["params"]["a"], np.full((4, 2), 3.0))
  assert jax.tree.structure(state) == jax.tree.structure(_state())
  best = c.restore_best(ck.abstract_like(_state()))
  assert best[2] == 2
  c.close()


def test_fresh_dir_restores_nothing(tmp_path):
  c = ck.Checkpointer(str(tmp_path / "new"))
  assert c.restore_latest(ck.abstract_like(_state())) is None
  c.close()


def test_a_relative_model_dir_resumes(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  c = ck.Checkpointer("runs/rel")
  c.save(1, _state(1.0), {})
  c.close()
  c = ck.Checkpointer("runs/rel")  # orbax refuses to restore from a relative path
  assert c.restore_latest(ck.abstract_like(_state()))[2] == 1
  assert c.model_dir == str(tmp_path / "runs" / "rel")
  c.close()


def test_corrupt_latest_falls_back_to_previous_and_says_so(tmp_path, caplog):
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  c.save(1, _state(1.0), {})
  c.save(2, _state(2.0), {})
  c.wait()
  c.close()
  # Corrupt step 2: truncate every data file of its state.
  for root, _, files in os.walk(tmp_path / "checkpoints" / "2" / "state"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"garbage")
  # A partial save (orbax's temporary dir) must be ignored, not mistaken for a step.
  os.makedirs(tmp_path / "checkpoints" / "3.orbax-checkpoint-tmp-123" / "state")
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  with caplog.at_level(logging.WARNING):
    state, _, step = c.restore_latest(ck.abstract_like(_state()))
  assert step == 1
  np.testing.assert_array_equal(state["params"]["a"], np.full((4, 2), 1.0))
  assert any("step 2" in r.getMessage() and "falling back" in r.getMessage()
             for r in caplog.records)
  # The unreadable step is moved aside (not deleted), so step 2 can be saved again.
  assert not os.path.exists(tmp_path / "checkpoints" / "2")
  assert os.path.isdir(tmp_path / "checkpoints" / "2.unreadable-1" / "state")
  assert any("2.unreadable-1" in r.getMessage() for r in caplog.records)
  assert c.latest.all_steps() == [1]
  assert c.save(2, _state(2.5), {})
  c.close()
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  state, _, step = c.restore_latest(ck.abstract_like(_state()))
  assert step == 2
  np.testing.assert_array_equal(state["params"]["a"], np.full((4, 2), 2.5))
  c.close()


def _truncate_data_files(step_dir):
  """The reviewer's corruption: the array data files emptied, the metadata intact."""
  data = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(step_dir, "state"))
          for f in fs if f"{os.sep}d{os.sep}" in os.path.join(r, f)]
  assert data
  for f in data:
    open(f, "wb").close()


@pytest.mark.parametrize("which", ["latest", "best"])
def test_save_onto_an_unreadable_existing_step_replaces_it(tmp_path, caplog, which):
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  save = c.save if which == "latest" else c.save_best
  manager = c.latest if which == "latest" else c.best
  assert save(4, _state(4.0), {})
  c.wait()
  assert not save(4, _state(9.0), {})  # readable: kept, as before
  _truncate_data_files(os.path.join(os.fspath(manager.directory), "4"))
  with caplog.at_level(logging.WARNING):
    assert save(4, _state(4.5), {})  # unreadable: set aside and saved anew
  c.wait()
  assert os.path.isdir(os.path.join(os.fspath(manager.directory), "4.unreadable-1"))
  assert any("Moved unreadable checkpoint" in r.getMessage() for r in caplog.records)
  restore = c.restore_latest if which == "latest" else c.restore_best
  state, _, step = restore(ck.abstract_like(_state()))
  assert step == 4
  np.testing.assert_array_equal(state["params"]["a"], np.full((4, 2), 4.5))
  c.close()


def test_shape_mismatch_is_one_clear_error_not_corruption(tmp_path):
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  c.save(1, _state(1.0), {})
  c.save(2, _state(2.0), {})
  c.save_best(2, _state(2.0), {})
  c.close()
  wide = {"a": jnp.zeros((6, 2)), "b": {"c": jnp.zeros(3)}}
  wide_state = {"step": jnp.int32(0), "params": wide, "opt_state": optax.adam(1e-3).init(wide)}
  msg = r"'params/a' has shape \(4, 2\) in the checkpoint but \(6, 2\) in the model.*ENCODER"
  with pytest.raises(ck.CheckpointMismatchError, match=msg):
    ck.restore_params_from_path(str(tmp_path), ck.abstract_like(wide))
  with pytest.raises(ck.CheckpointMismatchError, match=msg):
    ck.restore_from_path(str(tmp_path / "checkpoints" / "2"), ck.abstract_like(wide_state))
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  with pytest.raises(ck.CheckpointMismatchError, match=msg):
    c.restore_latest(ck.abstract_like(wide_state))
  with pytest.raises(ck.CheckpointMismatchError, match=msg):
    c.save(2, wide_state, {})
  c.close()
  # Nothing was treated as corrupt: no step moved aside, all still restore with the right model.
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]
  assert os.listdir(tmp_path / "best") == ["2"]
  _, step, _ = ck.restore_params_from_path(str(tmp_path), ck.abstract_like(_state()["params"]))
  assert step == 2
  extra = dict(_state()["params"], head={"w": jnp.zeros((2,))})
  with pytest.raises(ck.CheckpointMismatchError, match="absent from it.*'params/head/w'"):
    ck.restore_params_from_path(str(tmp_path), ck.abstract_like(extra))


def test_restore_from_model_dir_or_step_dir_and_params_only(tmp_path):
  c = ck.Checkpointer(str(tmp_path))
  c.save(5, _state(5.0), {})
  c.save_best(3, _state(3.0), {"best_f1": 0.5})
  c.close()
  _, _, step = ck.restore_from_path(str(tmp_path), ck.abstract_like(_state()))
  assert step == 3  # a model dir means its best checkpoint
  _, _, step = ck.restore_from_path(str(tmp_path / "checkpoints" / "5"),
                                    ck.abstract_like(_state()))
  assert step == 5
  params, step, d = ck.restore_params_from_path(
      str(tmp_path / "checkpoints" / "5"), ck.abstract_like(_state()["params"]))
  assert step == 5 and d.endswith("5")
  np.testing.assert_array_equal(params["b"]["c"], np.arange(3.0) * 5)
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    ck.candidate_step_dirs(str(tmp_path / "empty"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    ck.candidate_step_dirs(str(tmp_path / "nope"))


def test_preemption_guard_turns_sigterm_into_a_flag():
  with ck.PreemptionGuard() as g:
    assert g.requested is None
    os.kill(os.getpid(), signal.SIGTERM)
    assert g.requested == signal.SIGTERM
  assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler) or \
      callable(signal.getsignal(signal.SIGTERM))
