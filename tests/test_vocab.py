"""SentencePiece vocabulary: given by path, or trained on the catalog (cached), lazily resolved."""

import os
import pickle

import pytest
import seqio

from persoma.seqio_tasks import vocab

LABELS = ["Liked Genres: Action, Comedy. Not Liked Genres: None",
          "Liked Genres: None. Not Liked Genres: Horror, Romance"]


def _small_data():
  import persoma.data as data_lib
  return data_lib.load_dataset("synthetic", num_users=60, num_movies=50, min_ratings_per_user=22,
                               mean_ratings_per_user=30)


def test_tiny_corpus_trains_without_vocab_size_failure(tmp_path):
  v = vocab.get_vocabulary(corpus=LABELS * 3, vocab_size=8000, cache_dir=tmp_path)
  assert isinstance(v, seqio.SentencePieceVocabulary)
  assert 16 < v.vocab_size < 8000  # soft limit on a small corpus
  assert (v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2)
  ids = v.encode(LABELS[0])
  assert 2 not in ids and v.decode(ids) == LABELS[0]
  # byte fallback: unseen characters still round-trip
  assert v.decode(v.encode("Zoë 東京")) == "Zoë 東京"


def test_trained_vocab_is_cached_by_corpus_and_size(tmp_path, capsys):
  corpus = LABELS * 3
  path = vocab.train_sentencepiece(corpus, 500, tmp_path, "x")
  assert "training" in capsys.readouterr().err
  mtime = os.path.getmtime(path)
  assert vocab.train_sentencepiece(corpus, 500, tmp_path, "x") == path
  assert "training" not in capsys.readouterr().err and os.path.getmtime(path) == mtime
  assert vocab.train_sentencepiece(corpus, 400, tmp_path, "x") != path
  assert vocab.train_sentencepiece(corpus + ["another sentence"], 500, tmp_path, "x") != path
  assert str(path).startswith(str(tmp_path / "vocab"))


def test_corrupt_cached_vocab_is_retrained(tmp_path, capsys):
  path = vocab.train_sentencepiece(LABELS, 300, tmp_path, "x")
  path.write_bytes(b"garbage")
  capsys.readouterr()
  again = vocab.train_sentencepiece(LABELS, 300, tmp_path, "x")
  assert again == path and "corrupt" in capsys.readouterr().err
  assert vocab.get_vocabulary(path).decode(vocab.get_vocabulary(path).encode(LABELS[1])) == LABELS[1]


def test_vocabulary_from_path_and_bad_input(tmp_path):
  path = vocab.train_sentencepiece(LABELS, 300, tmp_path, "x")
  v = vocab.get_vocabulary(path, extra_ids=5)
  assert v.sentencepiece_model_file == str(path) and v.extra_ids == 5
  assert v.vocab_size == vocab.get_vocabulary(path).vocab_size + 5
  with pytest.raises(FileNotFoundError, match="nope.model"):
    vocab.get_vocabulary(tmp_path / "nope.model")
  with pytest.raises(ValueError, match="path, a dataset or a corpus"):
    vocab.get_vocabulary()
  with pytest.raises(ValueError, match="empty corpus"):
    vocab.train_sentencepiece(["", "  "], 100, tmp_path)


def test_catalog_vocabulary_covers_targets_and_catalog(tmp_path):
  from persoma.data import formats, genres
  data = _small_data()
  corpus = vocab.vocabulary_corpus(data)
  assert formats.TASK_INSTRUCTION in corpus
  assert any(data.catalog.titles[0] in t for t in corpus)
  v = vocab.get_vocabulary(data=data, vocab_size=8000, cache_dir=tmp_path)
  assert os.path.basename(v.sentencepiece_model_file).startswith("synthetic-v8000-")
  target = formats.format_target(genres.GENRES[:3], genres.GENRES[-3:])
  ids = v.encode(target)
  assert v.unk_id not in ids and v.decode(ids) == target
  # label words are frequent in the corpus, so the target is short
  assert len(ids) < len(target) / 2


class _Resolver:
  def __init__(self, path):
    self.path, self.calls = str(path), 0

  def __call__(self):
    self.calls += 1
    return self.path, 3

  def __eq__(self, other):
    return isinstance(other, _Resolver) and other.path == self.path

  def __hash__(self):
    return hash(self.path)


def test_lazy_vocabulary_resolves_on_first_use_only(tmp_path):
  path = vocab.train_sentencepiece(LABELS, 300, tmp_path, "x")
  r = _Resolver(path)
  lazy = vocab.LazySentencePieceVocabulary(r)
  str(lazy), repr(lazy)
  assert r.calls == 0  # building or printing it does not resolve
  plain = vocab.get_vocabulary(path, extra_ids=3)
  assert lazy.encode(LABELS[0]) == plain.encode(LABELS[0])
  assert lazy.vocab_size == plain.vocab_size and lazy.extra_ids == 3
  lazy.encode(LABELS[1])
  assert r.calls == 1
  lazy.unresolve()
  lazy.encode(LABELS[1])
  assert r.calls == 2
  other = vocab.LazySentencePieceVocabulary(lambda: (str(path), 3))
  assert other != lazy  # unknown without resolving `other`: never resolved by a comparison
  other.encode("x")
  assert other == lazy and other == plain and lazy != vocab.get_vocabulary(path)
  untouched = _Resolver(path)
  fresh = vocab.LazySentencePieceVocabulary(untouched)
  assert fresh != plain and len({fresh, lazy}) >= 1 and fresh in [lazy, fresh]
  assert untouched.calls == 0
  clone = pickle.loads(pickle.dumps(lazy))
  assert clone == lazy and clone.decode(clone.encode(LABELS[1])) == LABELS[1]


def test_vocab_size_below_the_corpus_floor_is_raised_to_it(tmp_path, capsys):
  v = vocab.get_vocabulary(corpus=LABELS, vocab_size=20, cache_dir=tmp_path)
  assert "below this corpus's minimum" in capsys.readouterr().err
  assert v.vocab_size > 256 and v.decode(v.encode(LABELS[1])) == LABELS[1]
