"""The on-disk embedding cache file: content keys, checksummed save, and a load that says why a
file cannot be used.

A file (``{cache_dir}/embeddings/{dataset}/{encoder}/{fmt}-{text_hash}.npz``, laid out by
``persoma.embeddings.store``) holds the ``[V, D]`` float32 embeddings, the hash of the ordered
texts they embed, and a sha256 of the array; a load that finds it unreadable, stale, of the wrong
shape, corrupt or non-finite returns None with the reason, and the caller rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from persoma import atomic_io

_CACHE_VERSION = "1"


def default_cache_dir() -> Path:
  """``$PERSOMA_CACHE_DIR`` or ``~/.cache/persoma``."""
  env = os.environ.get("PERSOMA_CACHE_DIR")
  return Path(env).expanduser() if env else Path("~/.cache/persoma").expanduser()


def hash_texts(header: str, texts: Sequence[str]) -> str:
  """sha256 hex of ``header`` then each text, length-prefixed (order matters; no collisions
  from concatenation). Shared by the embedding and vocabulary cache keys."""
  h = hashlib.sha256(header.encode())
  for t in texts:
    b = t.encode("utf-8")
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)
  return h.hexdigest()


def text_hash(texts: Sequence[str], fmt: str) -> str:
  """sha256 of the ordered distinct texts (and the format)."""
  return hash_texts(f"persoma-embeddings-v{_CACHE_VERSION}\0{fmt}\0{len(texts)}\0", texts)


def checksum(emb: np.ndarray) -> str:
  """sha256 hex of the float32 bytes of `emb` (the cache file's integrity check)."""
  return hashlib.sha256(np.ascontiguousarray(emb, np.float32).tobytes()).hexdigest()


def load(path: Path, corpus_hash: str, n: int) -> tuple[np.ndarray | None, str]:
  """(embeddings `[n, D]` or None, reason: `ok`, `absent` or what is wrong) for a cache file."""
  if not path.exists():
    return None, "absent"
  try:
    with np.load(path, allow_pickle=False) as f:
      emb = np.asarray(f["embeddings"])
      stored_hash = str(f["text_hash"])
      stored_checksum = str(f["checksum"])
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    return None, f"unreadable ({type(e).__name__}: {e})"
  if stored_hash != corpus_hash:
    return None, "text hash mismatch"
  if emb.dtype != np.float32 or emb.ndim != 2 or emb.shape[0] != n:
    return None, f"bad array {emb.dtype}{list(emb.shape)}, expected float32[{n}, D]"
  if stored_checksum != checksum(emb):
    return None, "checksum mismatch"
  if not np.isfinite(emb).all():
    return None, "non-finite values"
  return emb, "ok"


def save(path: Path, emb: np.ndarray, corpus_hash: str, meta: dict[str, str]) -> None:
  with atomic_io.atomic_open(path, "wb") as f:
    np.savez(f, embeddings=emb, text_hash=np.asarray(corpus_hash),
             checksum=np.asarray(checksum(emb)),
             **{f"meta_{k}": np.asarray(v) for k, v in meta.items()})
