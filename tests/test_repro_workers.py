"""The driver's workers (benchmarks/repro/workers.py): an interrupt while `--jobs` workers run
passes SIGTERM to every child they started, starts nothing more and waits for them."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

import repro_support  # first: puts benchmarks/ on sys.path
import reproduce
from repro import execute, state as state_lib, workers

# A child that saves on SIGTERM (prints "saved", exits 0) and otherwise sleeps far past the test.
SAVING_CHILD = ("import signal, sys, time\n"
                "def stop(*_):\n"
                "    print('saved', flush=True)\n"
                "    sys.exit(0)\n"
                "signal.signal(signal.SIGTERM, stop)\n"
                "print('started', flush=True)\n"
                "time.sleep(60)\n"
                "print('slept', flush=True)\n")


@pytest.fixture(autouse=True)
def _fresh_workers():
  workers.reset()
  yield
  workers.reset()


def _wait_for(cond, what: str, timeout: float = 60.0) -> None:
  end = time.time() + timeout
  while not cond():
    if time.time() > end:
      raise AssertionError(f"timed out waiting for {what}")
    time.sleep(0.02)


def test_an_interrupt_stops_every_workers_child_and_starts_no_more():
  import subprocess
  outputs: dict[str, tuple[int, str]] = {}
  ran: list[str] = []
  started = threading.Semaphore(0)

  def fn(item, cpu):
    ran.append(item)
    proc = workers.start([sys.executable, "-c", SAVING_CHILD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    started.release()
    outputs[item] = (proc.wait(), proc.stdout.read())
    return item

  main = threading.main_thread().ident

  def sigterm_when_both_run():  # `kill PID` of the driver while both workers' children run
    started.acquire()
    started.acquire()
    signal.pthread_kill(main, signal.SIGTERM)

  threading.Thread(target=sigterm_when_both_run, daemon=True).start()
  with pytest.raises(KeyboardInterrupt):
    with reproduce.sigterm_as_interrupt():
      list(workers.run_parallel(["a", "b", "queued"], fn, 2))
  # both children got SIGTERM and saved; the workers were waited for; the queued item never ran
  assert outputs == {"a": (0, "saved\n"), "b": (0, "saved\n")}
  assert sorted(ran) == ["a", "b"] and workers.stopping()
  with pytest.raises(workers.Preempted, match="driver is stopping"):
    workers.start([sys.executable, "-c", "pass"])
  # the next run_parallel starts children again
  assert list(workers.run_parallel(["c"], lambda x, cpu: workers.start(
      [sys.executable, "-c", "pass"]).wait(), 2)) == [("c", 0)]


def test_a_workers_decoding_stopped_by_the_driver_is_preempted(tmp_path, monkeypatch, plan):
  store = state_lib.Store(tmp_path)
  run = next(r for r in plan if r.run_id == "persoma_mlp-h5-recency-uem-full")
  pid_file = repro_support.slow_decoding(tmp_path, monkeypatch, store, run)

  def stop_when_started():
    _wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the decoding to start")
    assert workers.stop_all() == 1

  threading.Thread(target=stop_when_started, daemon=True).start()
  with pytest.raises(workers.Preempted, match="marginal decoding stopped"):
    execute.run_marginals(run, store, 4, 4, echo=lambda _: None)
  with pytest.raises(ProcessLookupError):  # terminated and reaped, not left running
    os.kill(int(pid_file.read_text()), 0)
  assert "marginal decoding stopped (driver interrupted)" in store.log_path(run.run_id).read_text()
  assert execute.Preempted is workers.Preempted  # what reproduce.py catches


def test_stop_all_signals_only_live_children():
  done = workers.start([sys.executable, "-c", "pass"])
  done.wait()
  assert workers.stop_all(signal.SIGTERM) == 0 and workers.stopping()
