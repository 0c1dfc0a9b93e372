"""The driver's worker threads and the child processes they start.

`run_parallel` runs the train runs `--jobs` at a time, one worker thread per core. A SIGTERM or
Ctrl-C reaches only the driver's main thread (reproduce.sigterm_as_interrupt), and a `kill PID`
only the driver, so every child (a runner, a marginal decoding) is started through `start`, and
an interrupted `run_parallel` passes SIGTERM on to each live one (`stop_all`) and waits for the
workers: a runner saves its checkpoint and exits, a decoding just exits, and no child is left
running on its own. Queued runs do not start, and a worker that would start a child after the
stop gets `Preempted` instead.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import threading
from typing import Any, Callable, Iterator

_LOCK = threading.Lock()
_LIVE: list[subprocess.Popen] = []
_STOPPING = threading.Event()


class Preempted(RuntimeError):
  """A run stopped by SIGTERM (a runner saves a checkpoint first; the same command resumes it),
  or not started because the driver is stopping."""


def start(cmd: list[str], **popen_kwargs: Any) -> subprocess.Popen:
  """`subprocess.Popen(cmd, **popen_kwargs)`, tracked for `stop_all`.

  Raises:
    Preempted: the driver is stopping (after `stop_all`), so nothing new starts.
  """
  with _LOCK:
    if _STOPPING.is_set():
      raise Preempted(f"the driver is stopping: {os.path.basename(cmd[0])} not started")
    _LIVE[:] = [p for p in _LIVE if p.poll() is None]
    proc = subprocess.Popen(cmd, **popen_kwargs)
    _LIVE.append(proc)
    return proc


def stopping() -> bool:
  """True after `stop_all`, until `reset` (the next `run_parallel` resets)."""
  return _STOPPING.is_set()


def reset() -> None:
  """Lets `start` start children again after a `stop_all`."""
  _STOPPING.clear()


def stop_all(sig: int = signal.SIGTERM) -> int:
  """Sends `sig` to every live child started by `start`, and makes later `start`s refuse;
  returns how many children were signalled."""
  with _LOCK:
    _STOPPING.set()
    live = [p for p in _LIVE if p.poll() is None]
    for p in live:
      try:
        p.send_signal(sig)
      except ProcessLookupError:  # exited since poll()
        pass
    return len(live)


def run_parallel(items: list, fn: Callable[[Any, int | None], Any], jobs: int
                 ) -> Iterator[tuple[Any, Any]]:
  """Yields `(item, fn(item, cpu))` in completion order, `jobs` at a time.

  With `jobs > 1` each worker slot owns one core (`slot % os.cpu_count()`), passed as `cpu`;
  with `jobs == 1` items run in order in this thread with `cpu=None` (all cores). If the
  consumer is interrupted (KeyboardInterrupt, which SIGTERM raises in the driver) while workers
  run, queued items are cancelled, the live children get SIGTERM (`stop_all`), the workers are
  waited for, and the interrupt goes on.
  """
  reset()
  if jobs <= 1:
    for item in items:
      yield item, fn(item, None)
    return
  ncpu = os.cpu_count() or 1
  free = list(range(jobs))
  lock = threading.Lock()

  def work(item):
    with lock:
      slot = free.pop(0)
    try:
      return fn(item, slot % ncpu)
    finally:
      with lock:
        free.append(slot)

  pool = concurrent.futures.ThreadPoolExecutor(jobs)
  futures = {pool.submit(work, item): item for item in items}
  try:
    for fut in concurrent.futures.as_completed(futures):
      yield futures[fut], fut.result()
  except BaseException:
    for fut in futures:
      fut.cancel()
    n = stop_all()
    if n:
      print(f"stopping: SIGTERM to {n} child process(es); waiting for them (runners save "
            "first) ...", flush=True)
    raise
  finally:
    pool.shutdown(wait=True)
