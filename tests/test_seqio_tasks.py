"""SeqIO task registry: names, cheap registration, lazy data, features, settings, real data."""

from pathlib import Path

import numpy as np
import pytest
import seqio

import persoma_tasks
from persoma.seqio_tasks import config, tasks, vocab

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SMALL_SYNTHETIC = dict(num_users=120, num_movies=80, min_ratings_per_user=22,
                       mean_ratings_per_user=35)
LENGTHS = {"inputs": 48, "targets": 32}


@pytest.fixture(scope="module")
def small_vocab_path(tmp_path_factory):
  """A quickly trained vocabulary (training one on a real catalog takes seconds)."""
  from persoma.data import formats, genres
  corpus = [formats.TASK_INSTRUCTION] + [formats.format_target((g,), (g,)) for g in genres.GENRES]
  return str(vocab.train_sentencepiece(corpus * 5, 400, tmp_path_factory.mktemp("v"), "t"))


@pytest.fixture
def settings(tmp_path, small_vocab_path):
  config.configure(encoder="hashing:16", cache_dir=str(tmp_path), synthetic=SMALL_SYNTHETIC,
                   data_dir=None, data_dirs={}, seed=0, vocabulary_path=small_vocab_path)
  yield
  config.reset_config()


def _rows(name, split="validation", lengths=LENGTHS):
  ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=lengths, split=split,
                                                   shuffle=False)
  return list(ds.as_numpy_iterator())


def test_every_task_name_is_registered():
  names = persoma_tasks.TASK_NAMES
  assert len(names) == len(set(names)) == 6 * 5 * 5 * 4 * 2
  registered = set(seqio.TaskRegistry.names())
  for ds in ("synthetic", "movielens_1m", "movielens_100k", "movielens_latest_small",
             "movielens_20m", "movielens_25m"):
    for fmt in ("uem", "complete", "title_score", "description_score"):
      assert f"persoma_{ds}_h50_recency_{fmt}" in registered
      assert f"persoma_{ds}_h100_long_tail_{fmt}_textprompt" in registered
  assert "persoma_movielens_1m_h5_topk_popularity_uem" in registered
  assert "persoma_movielens_1m_h10_genre_complete" in registered


def test_name_parsing_round_trip_and_errors():
  for spec in tasks.all_specs(datasets=["movielens_latest_small"], history_sizes=[20]):
    assert tasks.parse_task_name(spec.name) == spec
  spec = tasks.parse_task_name("persoma_movielens_1m_h50_topk_popularity_description_score")
  assert (spec.dataset_name, spec.history_size, spec.sampler, spec.fmt, spec.textprompt) == (
      "movielens/1m", 50, "topk_popularity", "description_score", False)
  with pytest.raises(ValueError, match="sampler in"):
    tasks.parse_task_name("persoma_movielens_1m_h50_popular_uem")


def test_registration_reads_no_data(settings):
  tasks.clear_caches()
  specs = [tasks.TaskSpec("movielens_25m", 7, "recency", "uem"),
           tasks.TaskSpec("movielens_20m", 7, "genre", "complete", True)]
  try:
    for spec in specs:
      assert tasks.register_task(spec, overwrite=True).name == spec.name
    # fresh vocabularies of two datasets: creating, tracking and comparing them resolves nothing
    a, b = (tasks.get_vocabulary.__wrapped__(d) for d in ("movielens/25m", "movielens/20m"))
    assert a == b  # one vocabulary_path is set: same file, known without resolving
    config.configure(vocabulary_path=None)
    assert a != b and len({a, b}) == 2 and str(a)  # unknown until trained: not equal
    assert not tasks._DATA and not tasks._VOCAB_PATHS and not tasks._STORES
  finally:
    for spec in specs:
      seqio.TaskRegistry.remove(spec.name)


def test_get_dataset_features_match_examples_and_store(settings):
  name = "persoma_synthetic_h10_random_uem"
  rows = _rows(name)
  spec = tasks.parse_task_name(name)
  exs = tasks.get_examples(spec, "validation")
  assert len(rows) == len(exs) > 0
  store = tasks.get_store("synthetic", "uem")
  data = tasks.load_data("synthetic")
  for row, ex in zip(rows, exs):
    assert row["user_id"].dtype == np.int64 and row["user_id"] == ex.user_id
    assert row["history_embeddings"].shape == (10, 3 * 16)
    assert row["history_embeddings"].dtype == np.float32
    assert row["history_mask"].dtype == np.int32
    emb, mask = store.history(data, ex.positions, 10)
    np.testing.assert_array_equal(row["history_embeddings"], emb)
    np.testing.assert_array_equal(row["history_mask"], mask)
    assert row["history_mask"].sum() == len(ex.positions)
    assert row["targets_pretokenized"].decode() == ex.targets
    assert row["targets"][-1] == 1 or row["targets"].shape[0] < LENGTHS["targets"]
    assert row["inputs"].dtype == np.int32 and row["inputs"][-1] == 1
  v = tasks.get_vocabulary("synthetic")
  assert v.sentencepiece_model_file == config.get_config().vocabulary_path
  assert v.decode(rows[0]["targets"].tolist()) == exs[0].targets
  # deterministic: a second pass gives identical rows
  again = _rows(name)
  for a, b in zip(rows, again):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_single_text_format_and_text_prompt(settings):
  row = _rows("persoma_synthetic_h5_recency_title_score")[0]
  assert row["history_embeddings"].shape == (5, 16)
  tp = _rows("persoma_synthetic_h5_recency_title_score_textprompt", lengths={"inputs": 512,
                                                                           "targets": 32})
  assert "history_embeddings" not in tp[0] and "history_mask" not in tp[0]
  text = tp[0]["inputs_pretokenized"].decode()
  ex = tasks.get_examples(tasks.parse_task_name("persoma_synthetic_h5_recency_title_score"),
                          "validation")[0]
  data = tasks.load_data("synthetic")
  title = data.catalog.titles[data.ratings.movie_idx[ex.positions[0]]]
  assert text.count("\nTitle: ") == len(ex.positions) and f"Title: {title}" in text
  assert tp[0]["user_id"] == ex.user_id


def test_default_vocabulary_is_trained_on_the_catalog(settings):
  config.configure(vocabulary_path=None, vocab_size=3000)
  row = _rows("persoma_synthetic_h5_recency_uem")[0]
  v = tasks.get_vocabulary("synthetic")
  path = Path(v.sentencepiece_model_file)
  assert path.parent == Path(config.get_config().cache_dir) / "vocab"
  assert path.name.startswith("synthetic-v3000-")
  assert v.decode(row["targets"].tolist()) == row["targets_pretokenized"].decode()
  title = tasks.load_data("synthetic").catalog.titles[0]
  assert v.unk_id not in v.encode(title) and len(v.encode(title)) < len(title) / 2
  config.configure(vocabulary_path=config.get_config().cache_dir + "/absent.model")
  with pytest.raises(Exception, match="absent.model"):  # settings changes re-resolve the vocab
    v.encode("x")


def test_settings_change_the_data(settings):
  name = "persoma_synthetic_h5_random_complete"
  first = _rows(name)
  config.configure(seed=1)
  second = _rows(name)
  assert [r["user_id"] for r in first] == [r["user_id"] for r in second]
  assert any(not np.array_equal(a["history_embeddings"], b["history_embeddings"])
             for a, b in zip(first, second))
  with pytest.raises(TypeError, match="unknown persoma data setting"):
    config.configure(encoders="hashing")
  with pytest.raises(ValueError, match="unknown split"):
    tasks.get_examples(tasks.parse_task_name(name), "dev")


def test_target_rationale_setting_prefixes_every_split_and_keeps_the_labels(settings):
  from persoma import errors
  from persoma.data import formats
  from persoma.metrics import verbalizer
  name = "persoma_synthetic_h10_recency_uem"
  plain = _rows(name)
  config.configure(target_rationale=True)
  rows = _rows(name)
  exs = tasks.get_examples(tasks.parse_task_name(name), "validation")
  assert [r["user_id"] for r in rows] == [r["user_id"] for r in plain]
  for row, ref, ex in zip(rows, plain, exs):
    text = row["targets_pretokenized"].decode()
    assert text == ex.targets and text.startswith("Shown: ")
    assert text.endswith(ref["targets_pretokenized"].decode())
    got, want = verbalizer.parse(text), verbalizer.parse(ref["targets_pretokenized"].decode())
    assert (got.liked, got.disliked, got.unknown) == (want.liked, want.disliked, ())
  config.configure(rationale_order="rating")  # a new example list, not the cached one
  ranked = tasks.get_examples(tasks.parse_task_name(name), "validation")
  assert [e.targets for e in ranked] != [e.targets for e in exs]
  assert [formats.parse_rationale(e.targets) for e in ranked] == [
      formats.parse_rationale(e.targets) for e in exs]
  config.configure(rationale_order="canonical", rationale_counts=True)  # not the cached list
  counted = tasks.get_examples(tasks.parse_task_name(name), "validation")
  assert [formats.parse_rationale(e.targets) for e in counted] == [
      formats.parse_rationale(e.targets) for e in exs]
  assert all(c is not None for e in counted
             for _, c in formats.parse_rationale_counts(e.targets).values())
  assert [e.targets for e in counted] != [e.targets for e in exs]
  with pytest.raises(errors.ConfigError, match="rationale_order='best'.*canonical, rating"):
    config.configure(rationale_order="best")
  with pytest.raises(errors.ConfigError, match="shown_label_config must be a persoma.data"):
    config.configure(shown_label_config={"like_threshold": 3.6})


def test_a_shown_label_config_nothing_reads_is_a_clear_error():
  from persoma import errors
  from persoma.data.labels import LabelConfig
  tuned = LabelConfig(like_threshold=3.65, min_genre_count=2)
  with pytest.raises(errors.ConfigError, match="shown_label_config is set but nothing would read"):
    config.PersomaDataConfig(shown_label_config=tuned)
  with pytest.raises(errors.ConfigError, match="here 'shown', 1"):
    config.PersomaDataConfig(shown_label_config=tuned, train_resample_labels="shown")
  for ok in (dict(train_resample_labels="shown", train_resamples=4), dict(target_rationale=True)):
    assert config.PersomaDataConfig(shown_label_config=tuned, **ok).shown_label_config == tuned
  with pytest.raises(errors.ConfigError, match="whole_rationale=True.*target_rationale is False"):
    config.PersomaDataConfig(whole_rationale=True)
  assert config.PersomaDataConfig(whole_rationale=True, target_rationale=True).whole_rationale
  with pytest.raises(errors.ConfigError, match="rationale_counts=True.*target_rationale is False"):
    config.PersomaDataConfig(rationale_counts=True)

def test_data_dir_resolution(monkeypatch, tmp_path):
  cfg = config.PersomaDataConfig()
  monkeypatch.delenv(config.ENV_DATA_DIR, raising=False)
  assert cfg.resolved_data_dir("movielens/1m") is None
  monkeypatch.setenv(config.ENV_DATA_DIR, str(tmp_path))
  assert cfg.resolved_data_dir("movielens/1m") == str(tmp_path)
  cfg = config.PersomaDataConfig(data_dir="/a", data_dirs={"movielens_1m": "/b"})
  assert cfg.resolved_data_dir("movielens/1m") == "/b"
  assert cfg.resolved_data_dir("movielens/latest-small") == "/a"
  with pytest.raises(TypeError):
    config.set_config({"encoder": "hashing"})


def test_real_movielens_latest_small(settings):
  if not (SHARED / "movielens" / "ml-latest-small" / "ratings.csv").exists():
    pytest.skip(f"real MovieLens data not found under {SHARED / 'movielens'}")
  config.configure(data_dir=str(SHARED / "movielens"))
  rows = _rows("persoma_movielens_latest_small_h20_recency_uem", split="test")
  data = tasks.load_data("movielens/latest-small")
  assert not data.synthetic and len(data.ratings) > 50_000
  assert rows and all(r["history_mask"].sum() == 20 for r in rows)  # pruned users have >= 20
  assert rows[0]["history_embeddings"].shape == (20, 48)
  assert all(r["targets_pretokenized"].startswith(b"Liked Genres: ") for r in rows)


def test_settings_from_gin_dynamic_registration():
  import gin
  with gin.unlock_config():
    gin.parse_config("""
from __gin__ import dynamic_registration
from persoma.seqio_tasks import config
config.PersomaDataConfig:
  encoder = 'hashing:32'
  data_dirs = {'movielens/1m': '/x'}
  seed = 3
config.set_config.config = @config.PersomaDataConfig()
""")
  try:
    cfg = gin.get_configurable(config.set_config)()
    assert config.get_config() is cfg
    assert (cfg.encoder, cfg.seed, cfg.resolved_data_dir("movielens/1m")) == ("hashing:32", 3, "/x")
  finally:
    gin.clear_config()
    config.reset_config()


@pytest.mark.parametrize("source,local_release,want", [
    ("auto", True, "local"), ("auto", False, "tfds"), ("tfds", True, "tfds"),
    ("local", True, "local")])
def test_data_source_routing(settings, monkeypatch, tmp_path, source, local_release, want):
  import persoma.data as data_lib
  local = tmp_path / "local"
  (local / "ml-1m").mkdir(parents=True)
  if local_release:
    for f in ("ratings.dat", "movies.dat"):
      (local / "ml-1m" / f).write_text("")
  seen = {}

  def fake_load(name, data_dir=None, descriptions=None, **kw):
    seen.update(name=name, data_dir=data_dir, source=kw["source"])
    raise RuntimeError("stop")

  monkeypatch.setattr(data_lib, "load_dataset", fake_load)
  config.configure(data_dir=str(local), tfds_data_dir=str(tmp_path / "tfds"), source=source)
  with pytest.raises(RuntimeError, match="stop"):
    tasks.load_data("movielens/1m")
  assert seen["name"] == "movielens/1m" and seen["source"] == source
  assert seen["data_dir"] == (str(local) if want == "local" else str(tmp_path / "tfds"))


def test_task_data_train_split_is_indexed_and_resampled(settings):
  from persoma.train import experiment
  task = experiment.TaskData(dataset="synthetic", history_size=6, inputs_length=48,
                             targets_length=32)
  dense = task.load("train", history_as_index=False)
  indexed = task.load("train")  # train splits default to the index form
  assert "history_index" in indexed.arrays and indexed.history_table is not None
  np.testing.assert_array_equal(indexed.rows(0, 5)["history_embeddings"],
                                dense.arrays["history_embeddings"][:5])
  val = task.load("validation")
  assert "history_embeddings" in val.arrays
  config.configure(train_resamples=3)
  tripled = task.load("train")
  assert len(tripled.targets) == 3 * len(dense.targets)
  assert tripled.targets[0::3] == dense.targets
  assert task.load("validation").targets == val.targets  # evaluation never resampled
  config.configure(standardize_embeddings=True)
  z = task.load("validation").arrays["history_embeddings"]
  assert z.shape == val.arrays["history_embeddings"].shape and np.isfinite(z).all()
  assert not np.allclose(z, val.arrays["history_embeddings"])
  with pytest.raises(ValueError, match="train_resamples"):
    config.configure(train_resamples=0)
  config.configure(train_resample_labels="shown")
  relabelled = task.load("train")  # copies labelled from their shown items; empty ones dropped
  assert len(dense.targets) <= len(relabelled.targets) <= len(tripled.targets)
  assert relabelled.targets != tripled.targets
  with pytest.raises(ValueError, match="train_resample_labels"):
    config.configure(train_resample_labels="future")
  # The copies' items by another sampler; copy 0 and (history) labels stay.
  config.configure(train_resample_labels="history", train_resample_sampler="random")
  mixed = task.load("train")
  assert mixed.targets == tripled.targets
  idx, base_idx = mixed.arrays["history_index"], tripled.arrays["history_index"]
  np.testing.assert_array_equal(idx[0::3], base_idx[0::3])
  assert not np.array_equal(idx, base_idx)
  with pytest.raises(ValueError, match="train_resample_sampler: unknown sampler 'newest'"):
    config.configure(train_resample_sampler="newest")


def test_item_targets_are_the_shown_items_genres_and_stars(settings):
  from persoma.data import labels
  from persoma.seqio_tasks.materialize import materialize
  name = "persoma_synthetic_h10_recency_uem"
  assert "history_genres" not in _rows(name)[0]  # off by default
  assert "history_genres" not in materialize(name, "validation", LENGTHS)
  config.configure(item_targets=True)
  rows = _rows(name)
  arrays = materialize(name, "validation", LENGTHS)
  exs = tasks.get_examples(tasks.parse_task_name(name), "validation")
  data = tasks.load_data("synthetic")
  gm = labels.movie_genre_matrix(data)
  for i, (row, ex) in enumerate(zip(rows, exs)):
    n = len(ex.positions)
    assert row["history_genres"].shape == (10, 19) and row["history_stars"].dtype == np.int32
    movies = data.ratings.movie_idx[ex.positions]
    np.testing.assert_array_equal(row["history_genres"][:n], gm[movies])
    np.testing.assert_array_equal(row["history_stars"][:n] + 1,
                                  np.ceil(data.ratings.rating[ex.positions]))
    assert not row["history_genres"][n:].any() and not row["history_stars"][n:].any()
    np.testing.assert_array_equal(arrays["history_genres"][i], row["history_genres"])
    np.testing.assert_array_equal(arrays["history_stars"][i], row["history_stars"])
  # the converter carries them to the model batch
  from persoma.seqio_tasks.feature_converter import PersomaFeatureConverter
  ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=LENGTHS, split="validation",
                                                   shuffle=False)
  converted = next(PersomaFeatureConverter()(ds, LENGTHS).as_numpy_iterator())
  np.testing.assert_array_equal(converted["history_stars"], rows[0]["history_stars"])
  with pytest.raises(ValueError, match="history_size=2"):
    labels.item_targets(data, [exs[0].positions], 2)
