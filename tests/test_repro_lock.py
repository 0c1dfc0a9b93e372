"""Run locks (benchmarks/repro/lock.py): one live holder per run, stale locks taken over, the
holder's file left alone by others, and the program leaving a held run and its dependants."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from repro_support import REPO  # first: puts benchmarks/ on sys.path  # noqa: F401
import reproduce
from repro import lock as lock_lib


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def _write(path, **info):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(info))


def test_hold_is_exclusive_and_released(tmp_path):
  path = tmp_path / "locks" / "r.json"
  with lock_lib.hold(path):
    info = json.loads(path.read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    with pytest.raises(lock_lib.Busy, match=f"process {os.getpid()}"):
      with lock_lib.hold(path):
        pass
    assert path.exists()  # the refused second holder did not remove the first one's lock
  assert not path.exists()
  with lock_lib.hold(path):  # free again
    assert lock_lib.holder(path)["pid"] == os.getpid()


def test_a_lock_of_a_live_process_is_respected(tmp_path):
  path = tmp_path / "r.json"
  _write(path, pid=os.getppid(), host=socket.gethostname(), boot_id=lock_lib._boot_id(),
         started="then")
  assert lock_lib.holder(path)["pid"] == os.getppid()
  with pytest.raises(lock_lib.Busy, match="delete it if that process is gone"):
    with lock_lib.hold(path):
      pass
  assert json.loads(path.read_text())["pid"] == os.getppid()


@pytest.mark.parametrize("case", ["dead pid", "rebooted"])
def test_a_stale_lock_is_taken_over(tmp_path, case):
  path = tmp_path / "r.json"
  if case == "dead pid":
    _write(path, pid=_dead_pid(), host=socket.gethostname(), boot_id=lock_lib._boot_id())
  else:
    if lock_lib._boot_id() is None:
      pytest.skip("no /proc/sys/kernel/random/boot_id here")
    _write(path, pid=os.getppid(), host=socket.gethostname(), boot_id="an-earlier-boot")
  assert lock_lib.holder(path) is None
  with lock_lib.hold(path):
    assert json.loads(path.read_text())["pid"] == os.getpid()
  assert not path.exists()


@pytest.mark.parametrize("content", ["another host", "unreadable"])
def test_locks_that_cannot_be_checked_are_trusted(tmp_path, content):
  path = tmp_path / "r.json"
  if content == "another host":
    _write(path, pid=_dead_pid(), host=socket.gethostname() + "-other", started="then")
  else:
    path.write_text("")  # a holder between creating and writing its file
  assert lock_lib.holder(path) is not None
  with pytest.raises(lock_lib.Busy):
    with lock_lib.hold(path):
      pass
  assert path.exists()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
  path = tmp_path / "r.json"
  with lock_lib.hold(path):
    _write(path, pid=os.getppid(), host=socket.gethostname(), started="later")
  assert json.loads(path.read_text())["started"] == "later"


def test_the_program_leaves_a_run_held_elsewhere_and_its_dependants(program_env, capsys):
  base, calls, _, work, tmp_path = program_env
  prog = reproduce.Program(reproduce.parse_args(base))
  longer = next(r for r in prog.plan if "steps" in r.groups and r.warm_from)
  shorter = longer.warm_from
  lock = prog.store.lock_path(shorter)
  _write(lock, pid=os.getppid(), host=socket.gethostname(), boot_id=lock_lib._boot_id(),
         started="then")
  assert reproduce.main(base + ["--only", shorter, "--only", longer.run_id]) == 1
  assert calls == []
  out = capsys.readouterr().out
  assert f"{shorter}: running in another process, leaving it" in out
  assert f"{longer.run_id}: waits for {shorter}, running in another process" in out
  assert "2 left to another process" in out
  page = (tmp_path / "docs" / "RESULTS.md").read_text()
  assert f"process {os.getppid()} on" in page and str(lock) not in page  # no local paths
  assert reproduce.main(base + ["--only", shorter, "--list"]) == 0
  row = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(shorter)]
  assert len(row) == 1 and row[0].split()[3] == "running:", row
  assert f"lock {lock}; delete it if that process is gone" in row[0]
  lock.unlink()  # the other process is gone
  assert reproduce.main(base + ["--only", shorter, "--only", longer.run_id]) == 0
  assert calls == [shorter, longer.run_id]
  assert not list((work / "locks").iterdir())
  assert reproduce.main(base + ["--only", shorter, "--dry_run"]) == 0  # writes no lock either
  assert not list((work / "locks").iterdir())
