"""Training order is a pure function of (seed, step): resumable without iterator state."""

import numpy as np
import pytest

from persoma.train import data


def _arrays(n=23):
  return {"x": np.arange(n, dtype=np.int32)[:, None] * np.ones((1, 3), np.int32),
          "y": np.arange(n, dtype=np.float32)}


def test_same_seed_same_batches_regardless_of_history():
  a = data.TrainBatcher(_arrays(), batch_size=4, seed=7)
  b = data.TrainBatcher(_arrays(), batch_size=4, seed=7)
  seq = [a.batch(s)["y"] for s in range(20)]
  # A fresh batcher asked for step 13 directly (as after a resume) gives the same batch.
  np.testing.assert_array_equal(b.batch(13)["y"], seq[13])
  np.testing.assert_array_equal(b.batch(2)["y"], seq[2])
  c = data.TrainBatcher(_arrays(), batch_size=4, seed=8)
  assert not all(np.array_equal(c.batch(s)["y"], seq[s]) for s in range(5))


def test_each_epoch_is_a_permutation_and_epochs_differ():
  bt = data.TrainBatcher(_arrays(), batch_size=4, seed=0)
  assert bt.steps_per_epoch == 5  # drop remainder: 23 // 4
  e0 = np.concatenate([bt.batch(s)["y"] for s in range(5)])
  e1 = np.concatenate([bt.batch(s)["y"] for s in range(5, 10)])
  assert len(set(e0.tolist())) == 20 and len(set(e1.tolist())) == 20
  assert not np.array_equal(e0, e1)
  np.testing.assert_array_equal(bt.batch(3)["x"][:, 0], bt.batch(3)["y"].astype(np.int32))


def test_process_slices_tile_the_global_batch():
  full = data.TrainBatcher(_arrays(), batch_size=8, seed=3)
  parts = [data.TrainBatcher(_arrays(), batch_size=8, seed=3, process_index=i,
                             process_count=2).batch(4)["y"] for i in range(2)]
  np.testing.assert_array_equal(np.concatenate(parts), full.batch(4)["y"])


@pytest.mark.parametrize("arrays,bs,msg", [
    ({"x": np.zeros((0, 2))}, 1, "empty"),
    ({"x": np.zeros((3, 2))}, 4, "fewer than batch_size"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(4)}, 1, "disagree"),
])
def test_bad_splits_are_clear_errors(arrays, bs, msg):
  with pytest.raises(ValueError, match=msg):
    data.TrainBatcher(arrays, batch_size=bs, name="validation")


def test_eval_batches_cover_everything_once_with_padding():
  out = list(data.eval_batches(_arrays(10), 4))
  assert [r for _, r in out] == [4, 4, 2]
  assert all(b["y"].shape == (4,) for b, _ in out)
  real = np.concatenate([b["y"][:r] for b, r in out])
  np.testing.assert_array_equal(real, np.arange(10))
  with pytest.raises(ValueError, match="empty"):
    list(data.eval_batches({"x": np.zeros((0, 1))}, 4, "test"))


def test_index_splits_gather_history_rows_from_the_table():
  rng = np.random.default_rng(0)
  table = rng.normal(size=(11, 4)).astype(np.float32)
  index = rng.integers(0, 11, size=(9, 5, 2)).astype(np.int32)
  b = data.TrainBatcher({"history_index": index, "x": np.arange(9)}, 3, seed=1,
                        history_table=table)
  batch = b.batch(4)
  assert "history_index" not in batch and batch["history_embeddings"].shape == (3, 5, 8)
  for row, i in zip(batch["history_embeddings"], batch["x"]):
    np.testing.assert_array_equal(row, table[index[i]].reshape(5, 8))
  with pytest.raises(ValueError, match="history_index and history_table"):
    data.TrainBatcher({"history_index": index}, 3)
