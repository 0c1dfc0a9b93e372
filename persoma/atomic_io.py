"""Atomic file writes: readers see the old file or the complete new one, never a partial one.

Every persoma file that a later step reads back (run configs, eval JSON, inference JSONL,
vocabularies, embedding caches, reproduction results) is written through here: into a temporary
file beside the target, then renamed over it. A failure while writing removes the temporary
file and leaves the previous target untouched. Targets behind a URL (`gs://...`, see
`persoma.fileio`) get the same protocol through tf.io.gfile.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from typing import IO, Iterator

from persoma import fileio


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
  """Opens a temporary file beside `path` (parents created); renames it to `path` on success.

  Args:
    path: the target file.
    mode: `"w"` (text, UTF-8) or `"wb"`.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
  path = os.fspath(path)
  tmp, handle = _temporary_beside(path, mode)
  try:
    with handle as f:
      yield f
    fileio.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(Exception):
      fileio.remove(tmp)
    raise


def _temporary_beside(path: str, mode: str) -> tuple[str, IO]:
  """A new temporary file in `path`'s folder (created if missing): `(its path, open handle)`."""
  if fileio.is_url(path):
    fileio.makedirs(os.path.dirname(path))
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    return tmp, fileio.open(tmp, mode)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
  return tmp, os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {}))


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes `text` to `path` atomically (UTF-8)."""
  with atomic_open(path, "w") as f:
    f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Writes `data` to `path` atomically."""
  with atomic_open(path, "wb") as f:
    f.write(data)


def read_json_to_extend(path: str | os.PathLike, kind: type) -> object:
  """The JSON `kind` (list or dict) a script wrote to `path` earlier and is about to extend,
  or an empty one when `path` does not exist. Raises ValueError naming `path` when it is not
  readable JSON of that kind, so the caller refuses before it overwrites anything."""
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except FileNotFoundError:
    return kind()
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: not readable as JSON ({e}); not overwriting it") from None
  if not isinstance(obj, kind):
    raise ValueError(f"{path}: holds a JSON {type(obj).__name__}, not a {kind.__name__}; "
                     "not overwriting it")
  return obj
