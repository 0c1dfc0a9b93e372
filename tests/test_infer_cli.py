"""persoma-infer: users' rated movies (JSON) -> generated text + parsed genres per user."""

import json

import gin
import numpy as np
import pytest

from persoma.train import experiment as experiment_lib
from persoma.train import main_infer, main_train

HISTORY = {"users": [
    {"user": "alice", "history": [
        {"title": "Heat (1995)", "rating": 4.5, "genres": ["Action", "Crime"],
         "description": "Bank robbers and a detective."},
        {"title": "Toy Story (1995)", "rating": 2, "genres": "Animation|Children"},
        {"title": "Sense and Sensibility (1995)", "rating": 1.5}]},
    {"user": "bob", "history": [{"title": "Alien (1979)", "rating": 5, "genres": ["Sci-Fi"]}]},
]}


def test_history_file_is_validated_with_clear_errors(tmp_path):
  good = tmp_path / "h.json"
  good.write_text(json.dumps(HISTORY))
  users = main_infer.load_users(str(good))
  assert [u["user"] for u in users] == ["alice", "bob"]
  assert users[0]["history"][1]["genres"] == ("Animation", "Children")
  assert users[0]["history"][2]["description"] == ""
  single = tmp_path / "one.json"
  single.write_text(json.dumps(HISTORY["users"][1]))
  assert main_infer.load_users(str(single))[0]["user"] == "bob"
  for content, msg in [("{", "invalid JSON at line 1"),
                       (json.dumps({"history": []}), "non-empty 'history'"),
                       (json.dumps({"history": [{"rating": 3}]}), "item #0: needs a 'title'"),
                       (json.dumps({"history": [{"title": "X", "rating": "high"}]}),
                        "numeric 'rating'"),
                       (json.dumps({"history": [{"title": "X", "rating": 9}]}), "outside 0-5"),
                       (json.dumps({"history": [{"title": "X", "rating": True}]}),
                        "numeric 'rating'"),
                       (json.dumps({"history": [{"title": "X", "rating": 4, "genres": 7}]}),
                        "'genres' must be a list"),
                       (json.dumps({"history": [{"title": "X", "rating": 4,
                                                 "genres": ["Action", "Westren"]}]}),
                        r"item #0: unknown genre\(s\) \['Westren'\]")]:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(SystemExit, match=msg):
      main_infer.load_users(str(bad))
  with pytest.raises(SystemExit, match="not found"):
    main_infer.load_users(str(tmp_path / "absent.json"))


class _Vocab:
  eos_id = 1

  def encode(self, text):
    return [2 + (ord(c) % 50) for c in text[:40]]


class _Enc:
  dim = 4

  def encode(self, texts):
    return np.asarray([[len(t), t.count("Action"), t.count("rated"), 1.0] for t in texts],
                      np.float32)


def test_batch_uses_the_last_n_items_in_the_run_format():
  users = main_infer.parse_users(HISTORY)
  task = experiment_lib.TaskData(history_size=2, fmt="uem", inputs_length=12, targets_length=6)
  b = main_infer.build_batch(users, task, _Vocab(), _Enc())
  assert b["history_embeddings"].shape == (2, 2, 12)      # [U, N, 3 * D] for uem
  np.testing.assert_array_equal(b["history_mask"], [[1, 1], [1, 0]])
  assert b["encoder_input_tokens"].shape == (2, 12) and b["encoder_input_tokens"][0, -1] == 1
  # alice's last two items (Toy Story, Sense and Sensibility): no 'Action' in their texts.
  assert b["history_embeddings"][0, :, 1].sum() == 0
  tp = experiment_lib.TaskData(history_size=2, fmt="complete", text_prompt=True,
                               inputs_length=64, targets_length=6)
  b = main_infer.build_batch(users, tp, _Vocab(), None)
  assert "history_embeddings" not in b and b["encoder_input_tokens"].shape == (2, 64)


@pytest.mark.slow
def test_infer_end_to_end(tmp_path, capsys):
  from test_train_cli import TINY  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / "m")
  gin.clear_config(clear_constants=True)
  assert main_train.main(TINY + ["--gin.TRAIN_STEPS=1", f"--gin.MODEL_DIR='{model_dir}'"]) == 0
  capsys.readouterr()
  hist = tmp_path / "h.json"
  hist.write_text(json.dumps(HISTORY))
  gin.clear_config(clear_constants=True)
  assert main_infer.main([f"--model_dir={model_dir}", f"--history={hist}", "--json"]) == 0
  lines = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()]
  assert [l["user"] for l in lines] == ["alice", "bob"]
  assert all(isinstance(l["text"], str) and isinstance(l["liked"], list) for l in lines)
  assert lines[0]["items_used"] == 3 and lines[1]["items_used"] == 1
  gin.clear_config(clear_constants=True)


@pytest.fixture
def small_task(tmp_path):
  """A tiny synthetic embedding task under the hashing encoder, with a small vocabulary."""
  from persoma.data import formats, genres  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import config, tasks, vocab  # pylint: disable=g-import-not-at-top
  corpus = [formats.TASK_INSTRUCTION] + [formats.format_target((g,), (g,)) for g in genres.GENRES]
  vocab_path = str(vocab.train_sentencepiece(corpus * 5, 400, tmp_path / "v", "t"))
  config.configure(encoder="hashing:16", cache_dir=str(tmp_path), data_dir=None, data_dirs={},
                   seed=0, vocabulary_path=vocab_path,
                   synthetic=dict(num_users=120, num_movies=80, min_ratings_per_user=22,
                                  mean_ratings_per_user=35))
  yield experiment_lib.TaskData(dataset="synthetic", history_size=6, fmt="uem",
                                inputs_length=48, targets_length=32), tasks
  config.reset_config()


def _history_of(tasks, task, split):
  """The first user of `split` in persoma-infer's JSON form (its items from the catalog)."""
  data = tasks.load_data(task.spec().dataset_name)
  ex = tasks.get_examples(task.spec(), split)[0]
  cat, r = data.catalog, data.ratings
  items = [{"title": cat.titles[m], "rating": float(r.rating[p]), "genres": list(cat.genres[m]),
            "description": cat.descriptions[m]}
           for p, m in ((p, int(r.movie_idx[p])) for p in ex.positions)]
  return main_infer.parse_users({"users": [{"user": "u", "history": items}]})


@pytest.mark.parametrize("standardize", [False, True])
def test_infer_batch_equals_the_training_features(small_task, standardize):
  """persoma-infer embeds a user's items exactly as the task fed them in training, with and
  without STANDARDIZE_EMBEDDINGS (before, it skipped the per-slot z-scoring)."""
  from persoma.seqio_tasks import config  # pylint: disable=g-import-not-at-top
  task, tasks = small_task
  config.configure(standardize_embeddings=standardize)
  train = task.load("test", history_as_index=False).arrays
  users = _history_of(tasks, task, "test")
  enc = tasks.get_encoder(config.get_config().encoder)
  b = main_infer.build_batch(users, task, task.vocabulary(), enc)
  np.testing.assert_array_equal(b["history_mask"][0], train["history_mask"][0])
  np.testing.assert_allclose(b["history_embeddings"][0], train["history_embeddings"][0],
                             rtol=0, atol=1e-6)
  np.testing.assert_array_equal(b["encoder_input_tokens"][0], train["encoder_input_tokens"][0])
  if standardize:  # a z-scored scale, not the raw encoder's
    assert abs(float(b["history_embeddings"][0].std()) - 1.0) < 0.3


def test_infer_standardizes_unseen_texts_with_their_slot_statistics(small_task):
  from persoma.seqio_tasks import config  # pylint: disable=g-import-not-at-top
  task, tasks = small_task
  config.configure(standardize_embeddings=True)
  users = _history_of(tasks, task, "test")
  users[0]["history"][-1] = dict(users[0]["history"][-1], description="A film never seen.")
  store = main_infer.standardized_store(task)
  assert store is not None and store.slot_stats is not None
  enc = tasks.get_encoder(config.get_config().encoder)
  b = main_infer.build_batch(users, task, task.vocabulary(), enc)
  n = len(users[0]["history"][-task.history_size:])
  row = b["history_embeddings"][0, n - 1].reshape(3, -1)
  mu, sd = store.slot_stats[2]  # uem slot 2: the description
  raw = enc.encode(["A film never seen."]).astype(np.float32)[0].astype(np.float64)
  np.testing.assert_allclose(row[2], (raw - mu) / sd, rtol=1e-6, atol=1e-6)
  # The same statistics reproduce the catalog's standardized rows.
  i = store.pair_text[0, 2]
  z = (enc.encode([store.texts[i]]).astype(np.float32)[0].astype(np.float64) - mu) / sd
  np.testing.assert_allclose(store.table[i], z, rtol=1e-5, atol=1e-5)
