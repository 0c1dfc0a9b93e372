"""SentencePiece vocabularies: a given model file, or one trained on the catalog and cached.

* :func:`get_vocabulary` with ``path``: any SentencePiece model (on TPU VMs T5's public
  ``gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model``).
* Otherwise a unigram model is trained with ``sentencepiece`` on the catalog text (titles,
  genres, descriptions, item texts), the label words and the task instruction, with T5's special
  ids (pad 0, eos 1, unk 2, no bos) and byte fallback. It is cached as
  ``{cache_dir}/vocab/{name}-v{size}-{corpus_hash}.model``; the key includes the corpus hash and
  the requested size. ``vocab_size`` is a soft limit, so a small corpus (the synthetic catalog)
  gives a smaller vocabulary instead of sentencepiece's "Vocabulary size too high" failure.
* :class:`LazySentencePieceVocabulary` defers training (and data loading) to first use, so task
  registration stays cheap.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import seqio
import sentencepiece as spm

from persoma import atomic_io
from persoma.embeddings.cache import default_cache_dir, hash_texts

DEFAULT_VOCAB_SIZE = 8000
_LABEL_REPEATS = 20  # label sentences are repeated so their words become single pieces
_TRAIN_VERSION = "1"


def _log(msg: str) -> None:
  print(f"[persoma.vocab] {msg}", file=sys.stderr, flush=True)


def vocabulary_corpus(data: Any) -> list[str]:
  """Training sentences for ``data``: instruction, label sentences and every catalog text.

  Covers the strings the tasks tokenize: the instruction, targets such as
  ``Liked Genres: Action, Comedy. Not Liked Genres: None`` (repeated), and per movie the text
  prompting line, the ``uem`` and ``complete`` item texts; plus every rating text.
  """
  from persoma.data import formats, genres as genres_lib  # pylint: disable=g-import-not-at-top
  genre_names = list(genres_lib.GENRES)
  labels = [formats.TASK_INSTRUCTION, formats.format_target((), ())]
  for i, g in enumerate(genre_names):
    other = genre_names[(i + 1) % len(genre_names)]
    labels.append(formats.format_target((g,), (other,)))
    labels.append(formats.format_target((g, other), ()))
  corpus = labels * _LABEL_REPEATS
  ratings = [r / 2 for r in range(1, 11)]
  cat = data.catalog
  for m in range(len(cat.titles)):
    title, genres, desc = cat.titles[m], cat.genres[m], cat.descriptions[m]
    corpus.append(formats.history_line("uem", title, genres, desc, ratings[(m % 10)]))
    corpus.extend(formats.item_texts("uem", title, genres, desc, 4.0)[:1])
    corpus.extend(formats.item_texts("complete", title, genres, desc, ratings[(m * 7) % 10]))
  for r in ratings:
    corpus.extend(formats.item_texts("uem", "", (), "", r)[1:2])
  return corpus


def corpus_hash(corpus: Sequence[str]) -> str:
  return hash_texts(f"persoma-vocab-v{_TRAIN_VERSION}\0{len(corpus)}\0", corpus)


def _loads(path: Path) -> bool:
  try:
    sp = spm.SentencePieceProcessor(model_file=str(path))
    return sp.get_piece_size() > 3 and sp.pad_id() == 0 and sp.eos_id() == 1
  except (OSError, RuntimeError, ValueError):
    return False


def train_sentencepiece(corpus: Sequence[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
                        cache_dir: str | os.PathLike | None = None, name: str = "catalog",
                        *, max_sentences: int = 200_000) -> Path:
  """Trains (or reuses from the cache) a unigram SentencePiece model on ``corpus``.

  Args:
    corpus: training sentences (order matters for the cache key).
    vocab_size: requested size; a soft limit (smaller corpora give fewer pieces).
    cache_dir: cache root (default ``$PERSOMA_CACHE_DIR`` or ``~/.cache/persoma``).
    name: file name prefix (the dataset slug).
    max_sentences: sentencepiece's ``input_sentence_size`` cap.

  Returns:
    Path of the ``.model`` file.
  """
  corpus = [t for t in corpus if t and t.strip()]
  if not corpus:
    raise ValueError("cannot train a SentencePiece vocabulary on an empty corpus")
  if int(vocab_size) < 16:
    raise ValueError(f"vocab_size must be >= 16, got {vocab_size}")
  root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
  key = corpus_hash(corpus)[:20]
  path = root / "vocab" / f"{name}-v{int(vocab_size)}-{key}.model"
  if path.exists():
    if _loads(path):
      return path
    _log(f"cached vocabulary {path} is corrupt; retraining it")
  buf = io.BytesIO()
  _log(f"training a {vocab_size}-piece SentencePiece vocabulary on {len(corpus)} sentences")
  size = int(vocab_size)
  for _ in range(2):
    try:
      spm.SentencePieceTrainer.train(
          sentence_iterator=iter(corpus), model_writer=buf, vocab_size=size,
          model_type="unigram", hard_vocab_limit=False, character_coverage=1.0,
          byte_fallback=True, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
          input_sentence_size=max_sentences, shuffle_input_sentence=False,
          num_threads=min(2, os.cpu_count() or 1), minloglevel=2,
          seed_sentencepiece_size=200_000)
      break
    except RuntimeError as e:
      # Below the floor (256 byte pieces + every character + specials): raise to the floor.
      m = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(e))
      if not m or size >= int(m.group(1)):
        raise
      size = int(m.group(1))
      buf = io.BytesIO()
      _log(f"vocab_size={vocab_size} is below this corpus's minimum {size} (byte fallback + "
           f"its characters); training {size} pieces instead")
  atomic_io.write_bytes(path, buf.getvalue())
  return path


class LazySentencePieceVocabulary(seqio.SentencePieceVocabulary):
  """A ``seqio.SentencePieceVocabulary`` whose model file is found on first use.

  Args:
    resolver: picklable zero-argument callable returning the ``.model`` path, or
      ``(path, extra_ids)``; it may load data and train the model. Called on first access to the
      tokenizer/file and again after :meth:`unresolve` (e.g. when settings change).
    extra_ids: sentinel ids appended (T5 style) when the resolver does not say.
  """

  def __init__(self, resolver: Callable[[], Any], extra_ids: int = 0):
    self._resolver = resolver
    super().__init__(sentencepiece_model_file=None, extra_ids=extra_ids)  # type: ignore[arg-type]

  def _resolve(self) -> None:
    if self._sentencepiece_model_file is None:
      got = self._resolver()
      if isinstance(got, tuple):
        got, self._extra_ids = got[0], int(got[1])
      self._sentencepiece_model_file = os.fspath(got)

  def unresolve(self) -> None:
    """Forgets the resolved file, so the next use resolves again."""
    self._sentencepiece_model_file = None
    self._model = None

  def _model_context(self):
    self._resolve()
    return super()._model_context()

  @property
  def extra_ids(self) -> int:
    self._resolve()
    return self._extra_ids

  @property
  def sentencepiece_model_file(self) -> str:
    self._resolve()
    return self._sentencepiece_model_file

  def __getstate__(self):
    state = super().__getstate__()
    state["_sentencepiece_model_file"] = None  # resolve again wherever it is unpickled
    return state

  def _peek(self) -> tuple[str, int] | None:
    """(file, extra_ids) if known without loading data or training, else None."""
    if self._sentencepiece_model_file is not None:
      return self._sentencepiece_model_file, self._extra_ids
    peek = getattr(self._resolver, "peek", None)
    got = peek() if peek is not None else None
    if got is None:
      return None
    return (os.fspath(got[0]), int(got[1])) if isinstance(got, tuple) else (os.fspath(got),
                                                                            self._extra_ids)

  def __eq__(self, other):
    """Same resolver, or the same model file and extra ids where known without resolving.

    Comparison never loads data or trains a model (registration must stay cheap).
    """
    if isinstance(other, LazySentencePieceVocabulary):
      if self._resolver == other._resolver:
        return True
      mine, theirs = self._peek(), other._peek()
      return mine is not None and mine == theirs
    if isinstance(other, seqio.SentencePieceVocabulary):
      mine = self._peek()
      return mine is not None and mine == (other.sentencepiece_model_file, other.extra_ids)
    return False

  def __hash__(self):
    return hash(type(self).__name__)  # equal objects may have different resolvers

  def __repr__(self) -> str:
    return f"LazySentencePieceVocabulary({self._resolver!r})"

  __str__ = __repr__  # never trains or loads data just to be printed


def get_vocabulary(path: str | os.PathLike | None = None, *, data: Any = None,
                   corpus: Iterable[str] | None = None, vocab_size: int = DEFAULT_VOCAB_SIZE,
                   extra_ids: int = 0, cache_dir: str | os.PathLike | None = None,
                   name: str | None = None) -> seqio.SentencePieceVocabulary:
  """A ``seqio.SentencePieceVocabulary``: from ``path``, or trained on ``data``/``corpus``.

  Args:
    path: an existing SentencePiece model file (local or gs://); wins over training.
    data: a MovieLensData whose :func:`vocabulary_corpus` is used for training.
    corpus: explicit training sentences (instead of ``data``).
    vocab_size: requested size for training (soft limit).
    extra_ids: sentinel ids appended by seqio.
    cache_dir: cache root for trained models.
    name: cache file prefix (default: slug of ``data.name`` or ``custom``).
  """
  if path is not None:
    path = os.fspath(path)
    if "://" not in path and not os.path.exists(path):
      raise FileNotFoundError(f"SentencePiece model not found: {path}")
    return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)
  if corpus is None:
    if data is None:
      raise ValueError("get_vocabulary needs a model path, a dataset or a corpus")
    corpus = vocabulary_corpus(data)
  if name is None:
    name = "".join(c if c.isalnum() else "_" for c in data.name) if data is not None else "custom"
  model = train_sentencepiece(list(corpus), vocab_size, cache_dir, name)
  return seqio.SentencePieceVocabulary(str(model), extra_ids=extra_ids)
