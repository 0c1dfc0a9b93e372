"""PersomaFeatureConverter (tf.data) and materialize (numpy) produce the DESIGN model batch."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

import persoma_tasks  # noqa: F401  (registers the tasks)
from persoma.seqio_tasks import (PersomaFeatureConverter, config, gather_history, history_table,
                                 materialize, tasks, vocab)

SMALL_SYNTHETIC = dict(num_users=120, num_movies=80, min_ratings_per_user=22,
                       mean_ratings_per_user=35)


def _toy_ds(n=4, d=6):
  rows = {
      "inputs": [[5, 6, 7, 1], [8, 1]],
      "targets": [[3, 9, 1], [4, 4, 4, 1]],
  }
  emb = np.arange(2 * n * d, dtype=np.float32).reshape(2, n, d)
  mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.int32)

  def gen():
    for i in range(2):
      yield {"inputs": np.int32(rows["inputs"][i]), "targets": np.int32(rows["targets"][i]),
             "history_embeddings": emb[i], "history_mask": mask[i], "user_id": np.int64(i)}

  sig = {"inputs": tf.TensorSpec([None], tf.int32), "targets": tf.TensorSpec([None], tf.int32),
         "history_embeddings": tf.TensorSpec([n, d], tf.float32),
         "history_mask": tf.TensorSpec([n], tf.int32), "user_id": tf.TensorSpec([], tf.int64)}
  return tf.data.Dataset.from_generator(gen, output_signature=sig), emb, mask


def test_converter_builds_model_features_and_carries_history():
  ds, emb, mask = _toy_ds()
  out = list(PersomaFeatureConverter()(ds, {"inputs": 5, "targets": 4}).as_numpy_iterator())
  assert set(out[0]) == {"encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                         "decoder_loss_weights", "history_embeddings", "history_mask"}
  np.testing.assert_array_equal(out[0]["encoder_input_tokens"], [5, 6, 7, 1, 0])
  np.testing.assert_array_equal(out[0]["decoder_target_tokens"], [3, 9, 1, 0])
  np.testing.assert_array_equal(out[0]["decoder_input_tokens"], [0, 3, 9, 1])
  assert out[0]["decoder_loss_weights"].dtype == np.float32
  np.testing.assert_array_equal(out[0]["decoder_loss_weights"], [1, 1, 1, 0])
  np.testing.assert_array_equal(out[1]["decoder_input_tokens"], [0, 4, 4, 4])
  for i in range(2):
    np.testing.assert_array_equal(out[i]["history_embeddings"], emb[i])
    np.testing.assert_array_equal(out[i]["history_mask"], mask[i])
  batch = next(PersomaFeatureConverter()(ds, {"inputs": 5, "targets": 4}).batch(2)
               .as_numpy_iterator())
  assert batch["history_embeddings"].shape == (2, 4, 6) and batch["history_mask"].shape == (2, 4)


def test_converter_explicit_lengths_text_only_and_errors():
  ds, _, _ = _toy_ds()
  conv = PersomaFeatureConverter()
  lengths = {"inputs": 5, "targets": 4, "history_embeddings": 4, "history_mask": 4}
  assert next(conv(ds, lengths).as_numpy_iterator())["history_mask"].shape == (4,)
  assert conv.get_model_feature_lengths(lengths)["history_embeddings"] == 4
  assert conv.get_model_feature_lengths({"inputs": 5, "targets": 4}) == {
      "encoder_input_tokens": 5, "decoder_target_tokens": 4, "decoder_input_tokens": 4,
      "decoder_loss_weights": 4}
  text_only = ds.map(lambda x: {"inputs": x["inputs"], "targets": x["targets"]})
  assert set(next(conv(text_only, {"inputs": 5, "targets": 4}).as_numpy_iterator())) == {
      "encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
      "decoder_loss_weights"}
  with pytest.raises(ValueError, match="pack=True"):
    PersomaFeatureConverter(pack=True)
  with pytest.raises(ValueError, match="history_embeddings.*3.*N = 4"):
    conv(ds, {"inputs": 5, "targets": 4, "history_embeddings": 3, "history_mask": 4})


@pytest.fixture
def settings(tmp_path):
  from persoma.data import formats, genres
  corpus = [formats.TASK_INSTRUCTION] + [formats.format_target((g,), (g,)) for g in genres.GENRES]
  path = vocab.train_sentencepiece(corpus * 5, 400, tmp_path, "t")
  config.configure(encoder="hashing:8", cache_dir=str(tmp_path), synthetic=SMALL_SYNTHETIC,
                   vocabulary_path=str(path), seed=0)
  yield
  config.reset_config()


@pytest.mark.parametrize("name,lengths", [
    ("persoma_synthetic_h10_genre_uem", {"inputs": 24, "targets": 12}),
    ("persoma_synthetic_h5_long_tail_description_score_textprompt", {"inputs": 300, "targets": 40}),
])
def test_materialize_equals_get_dataset_plus_converter(settings, name, lengths):
  ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=lengths, split="validation",
                                                   shuffle=False)
  rows = list(PersomaFeatureConverter()(ds, lengths).as_numpy_iterator())
  arrays = materialize(name, "validation", lengths, with_user_id=True)
  assert rows and set(arrays) - {"user_id"} == set(rows[0])
  for key, value in arrays.items():
    if key == "user_id":
      ids = [tasks.get_examples(tasks.parse_task_name(name), "validation")[i].user_id
             for i in range(len(rows))]
      np.testing.assert_array_equal(value, ids)
      continue
    want = np.stack([r[key] for r in rows])
    assert value.dtype == want.dtype and value.shape == want.shape, key
    np.testing.assert_array_equal(value, want, err_msg=key)
  if "history_mask" in arrays:
    assert arrays["history_embeddings"].shape[1:] == (10, 3 * 8)
    assert not arrays["history_embeddings"][arrays["history_mask"] == 0].any()
  assert (arrays["decoder_loss_weights"] == (arrays["decoder_target_tokens"] > 0)).all()


def test_materialize_history_as_index_saves_memory_and_matches(settings):
  name, lengths = "persoma_synthetic_h10_recency_complete", {"inputs": 24, "targets": 12}
  full = materialize(name, "train", lengths)
  small = materialize(name, "train", lengths, history_as_index=True)
  assert "history_embeddings" not in small and small["history_index"].shape[1:] == (10, 1)
  table = history_table(name)
  np.testing.assert_array_equal(gather_history(table, small["history_index"]),
                                full["history_embeddings"])
  np.testing.assert_array_equal(small["history_mask"], full["history_mask"])
  assert small["history_index"].nbytes < full["history_embeddings"].nbytes / 4
  with pytest.raises(ValueError, match="text-prompting"):
    history_table(name + "_textprompt")
