"""Run locks: two program invocations never work on the same run at once.

While `reproduce.py` trains, measures or archives a run it holds `<work dir>/locks/<run id>.json`
(created with O_EXCL: its process id, host, boot id and start time). Another invocation sees the
run as `running` and leaves it, and its dependants, alone. A lock whose process is gone (same
host and boot, no such process; or the machine rebooted since) is stale and is taken over; a
lock from another host is trusted until its file is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator


class Busy(RuntimeError):
  """The run is held by another live process."""


def _boot_id() -> str | None:
  try:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
  except OSError:
    return None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by another user
    return True
  return True


def _read(path: Path) -> dict[str, Any] | None:
  try:
    obj = json.loads(path.read_text())
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # being written, or damaged: neither is proof its process is gone
  return obj if isinstance(obj, dict) else {}


def is_stale(info: dict[str, Any]) -> bool:
  """Whether the process that wrote `info` is certainly gone."""
  if info.get("host") != socket.gethostname():
    return False
  boot = _boot_id()
  if boot and info.get("boot_id") and info["boot_id"] != boot:
    return True
  pid = info.get("pid")
  return isinstance(pid, int) and pid != os.getpid() and not _alive(pid)


def holder(path: Path) -> dict[str, Any] | None:
  """The live lock at `path` ({} if unreadable), or None when free or stale."""
  info = _read(path)
  if info is None or (info and is_stale(info)):
    return None
  return info


def describe(info: dict[str, Any]) -> str:
  """Who holds a lock, e.g. `process 123 on vm since 2026-12-05T07:51:39`."""
  if not info:
    return "a process whose lock file is not readable yet"
  return f"process {info.get('pid')} on {info.get('host')} since {info.get('started')}"


def hint(path: Path) -> str:
  return f"lock {path}; delete it if that process is gone"


@contextlib.contextmanager
def hold(path: Path) -> Iterator[None]:
  """Holds the lock at `path` for the block; raises Busy when a live process holds it."""
  path.parent.mkdir(parents=True, exist_ok=True)
  info = {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id(),
          "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
  for _ in range(2):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      other = holder(path)
      if other is not None:
        raise Busy(f"{describe(other)} ({hint(path)})") from None
      with contextlib.suppress(FileNotFoundError):  # stale: take it over
        path.unlink()
      continue
    with os.fdopen(fd, "w") as f:
      f.write(json.dumps(info) + "\n")
    break
  else:
    raise Busy(f"could not take {path}: another process took it first")
  try:
    yield
  finally:
    if _read(path) == info:
      with contextlib.suppress(FileNotFoundError):
        path.unlink()
