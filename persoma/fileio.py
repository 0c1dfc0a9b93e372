"""File access for model dirs that live on local disk or behind a URL (`gs://bucket/run`).

T5X runs keep MODEL_DIR in a Cloud Storage bucket. orbax and tensorstore handle `gs://` for
checkpoints themselves; everything else persoma reads or writes under a model dir (config.gin,
eval JSON, inference JSONL, checkpoint step discovery, gin files) goes through here. Local paths
use `os` (no TensorFlow import); paths with a URL scheme (`gs://`, TensorFlow's in-memory
`ram://`, others that tensorflow-io registers) use `tf.io.gfile`, imported on first use. Its
errors come out as the builtin ones callers already handle: `FileNotFoundError` for a missing
path, `OSError` for the rest (permissions, credentials), each naming the path.
"""

from __future__ import annotations

import builtins
import os
import re
from typing import IO

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str | os.PathLike) -> bool:
  """True for `scheme://...` paths (handled by tf.io.gfile), False for local ones."""
  return bool(_URL.match(os.fspath(path)))


def _gfile():
  try:
    from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - tensorflow is a dependency
    raise ImportError("paths with a URL scheme (gs://...) need tensorflow's tf.io.gfile") from e
  return gfile


def _url(op: str, path: str, *args, **kwargs):
  """`tf.io.gfile.<op>(path, ...)` with TensorFlow's errors turned into builtin ones."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return getattr(_gfile(), op)(path, *args, **kwargs)
  except tf.errors.NotFoundError as e:
    raise FileNotFoundError(f"{path}: {e.message}") from None
  except tf.errors.OpError as e:
    raise OSError(f"{path}: {type(e).__name__}: {e.message}") from None


def absolute(path: str | os.PathLike) -> str:
  """`os.path.abspath` of a local path (after `~` expansion); a URL unchanged."""
  path = os.fspath(path)
  return path if is_url(path) else os.path.abspath(os.path.expanduser(path))


def exists(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  return _url("exists", path) if is_url(path) else os.path.exists(path)


def isdir(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  return _url("isdir", path) if is_url(path) else os.path.isdir(path)


def isfile(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  if is_url(path):
    return _url("exists", path) and not _url("isdir", path)
  return os.path.isfile(path)


def listdir(path: str | os.PathLike) -> list[str]:
  """Entry names of a directory (no trailing `/`, which object stores add to folders)."""
  path = os.fspath(path)
  names = _url("listdir", path) if is_url(path) else os.listdir(path)
  return [n.rstrip("/") for n in names]


def makedirs(path: str | os.PathLike) -> None:
  path = os.fspath(path)
  if is_url(path):
    _url("makedirs", path)
  else:
    os.makedirs(path, exist_ok=True)


def open(path: str | os.PathLike, mode: str = "r") -> IO:  # pylint: disable=redefined-builtin
  """`open(path, mode)`; text modes read and write UTF-8. A URL opened for reading must exist
  (`FileNotFoundError` here, not at the first read)."""
  path = os.fspath(path)
  if is_url(path):
    if "r" in mode and not exists(path):
      raise FileNotFoundError(f"{path}: no such file")
    return _url("GFile", path, mode)
  kwargs = {} if "b" in mode else {"encoding": "utf-8"}
  return builtins.open(path, mode, **kwargs)


def replace(src: str, dst: str) -> None:
  """Renames `src` over `dst` (both local or both URLs). On object stores this is a copy of
  the complete object followed by a delete, so readers still never see a partial `dst`."""
  if is_url(src) != is_url(dst):
    raise ValueError(f"cannot rename between a URL and a local path: {src!r} -> {dst!r}")
  if is_url(src):
    _url("rename", src, dst, overwrite=True)
  else:
    os.replace(src, dst)


def remove(path: str | os.PathLike) -> None:
  path = os.fspath(path)
  if is_url(path):
    _url("remove", path)
  else:
    os.unlink(path)
