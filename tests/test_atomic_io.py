"""persoma.atomic_io: complete-or-nothing writes."""

from __future__ import annotations

import os

import pytest

from persoma import atomic_io


def test_writes_text_and_bytes_creating_parents(tmp_path):
  path = tmp_path / "a" / "b" / "f.txt"
  atomic_io.write_text(path, "héllo\n")
  assert path.read_text(encoding="utf-8") == "héllo\n"
  atomic_io.write_bytes(path, b"\x00\x01")
  assert path.read_bytes() == b"\x00\x01"
  assert os.listdir(path.parent) == ["f.txt"]  # no temporary file left


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
  path = tmp_path / "results.json"
  path.write_text("old")
  with pytest.raises(RuntimeError, match="disk gone"):
    with atomic_io.atomic_open(path) as f:
      f.write("partial new cont")
      raise RuntimeError("disk gone")
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["results.json"]


def test_rejects_append_and_read_modes(tmp_path):
  for mode in ("a", "r", "w+"):
    with pytest.raises(ValueError, match="mode must be"):
      with atomic_io.atomic_open(tmp_path / "x", mode):
        pass
  assert not os.listdir(tmp_path)


def test_read_json_to_extend_refuses_what_it_cannot_extend(tmp_path):
  path = tmp_path / "figures.json"
  assert atomic_io.read_json_to_extend(path, list) == []
  path.write_text('{"a": 1}')
  assert atomic_io.read_json_to_extend(path, dict) == {"a": 1}
  with pytest.raises(ValueError, match=f"{path}: holds a JSON dict, not a list"):
    atomic_io.read_json_to_extend(path, list)
  path.write_text("[1,")
  with pytest.raises(ValueError, match=f"{path}: not readable as JSON"):
    atomic_io.read_json_to_extend(path, list)
