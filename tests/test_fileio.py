"""Model dirs behind a URL: what persoma writes and finds there goes through `persoma.fileio`.

Cloud Storage is not reachable here, so these tests use TensorFlow's in-memory `ram://`
filesystem, which tf.io.gfile serves through the same code path as `gs://`.
"""

from __future__ import annotations

import json
import os
import uuid

import gin
import pytest

from persoma import atomic_io
from persoma import fileio
from persoma.train import checkpointing
from persoma.train import gin_cli
from persoma.train import main_eval
from persoma.train import main_infer

tf = pytest.importorskip("tensorflow")


@pytest.fixture
def ram_dir():
  """A fresh `ram://` directory per test."""
  root = f"ram://persoma-test-{uuid.uuid4().hex}"
  fileio.makedirs(root)
  return root


def test_is_url():
  assert fileio.is_url("gs://bucket/run") and fileio.is_url("ram://x")
  assert not fileio.is_url("/tmp/run") and not fileio.is_url("run/gs://x")
  assert fileio.absolute("gs://bucket/run") == "gs://bucket/run"
  assert fileio.absolute("run") == os.path.join(os.getcwd(), "run")


@pytest.mark.parametrize("where", ["local", "ram"])
def test_operations_agree_on_local_and_url_paths(where, tmp_path, ram_dir):
  root = str(tmp_path) if where == "local" else ram_dir
  sub = os.path.join(root, "a", "b")
  fileio.makedirs(sub)
  with fileio.open(os.path.join(sub, "x.txt"), "w") as f:
    f.write("héllo")
  assert fileio.isdir(sub) and not fileio.isfile(sub)
  assert fileio.isfile(os.path.join(sub, "x.txt"))
  assert sorted(fileio.listdir(os.path.join(root, "a"))) == ["b"]
  fileio.replace(os.path.join(sub, "x.txt"), os.path.join(sub, "y.txt"))
  assert fileio.listdir(sub) == ["y.txt"]
  with fileio.open(os.path.join(sub, "y.txt")) as f:
    assert f.read() == "héllo"
  fileio.remove(os.path.join(sub, "y.txt"))
  assert not fileio.exists(os.path.join(sub, "y.txt"))


def test_replace_refuses_to_cross_filesystems(tmp_path, ram_dir):
  with pytest.raises(ValueError, match="URL and a local path"):
    fileio.replace(str(tmp_path / "x"), ram_dir + "/x")


def test_atomic_write_to_url_creates_parents_and_keeps_old_file_on_failure(ram_dir):
  path = f"{ram_dir}/run/eval_test.json"
  atomic_io.write_text(path, '{"f1": 0.5}\n')
  with fileio.open(path) as f:
    assert f.read() == '{"f1": 0.5}\n'
  with pytest.raises(RuntimeError, match="boom"):
    with atomic_io.atomic_open(path) as f:
      f.write('{"f1": ')
      raise RuntimeError("boom")
  with fileio.open(path) as f:
    assert f.read() == '{"f1": 0.5}\n'
  assert fileio.listdir(f"{ram_dir}/run") == ["eval_test.json"]  # no temporary left
  atomic_io.write_bytes(f"{ram_dir}/run/v.bin", b"\x00\x01")
  with fileio.open(f"{ram_dir}/run/v.bin", "rb") as f:
    assert f.read() == b"\x00\x01"


def test_url_errors_are_builtin_errors_naming_the_path(ram_dir):
  with pytest.raises(FileNotFoundError, match="missing"):
    fileio.listdir(f"{ram_dir}/missing")
  with pytest.raises(FileNotFoundError, match="nothing.json"):
    fileio.open(f"{ram_dir}/nothing.json")


def test_listdir_drops_the_slash_object_stores_put_after_folders(monkeypatch):
  class FakeGfile:
    @staticmethod
    def listdir(path):
      assert path == "gs://b/run/checkpoints"
      return ["500/", "750/", "notes.txt"]

  monkeypatch.setattr(fileio, "_gfile", lambda: FakeGfile)
  assert fileio.listdir("gs://b/run/checkpoints") == ["500", "750", "notes.txt"]


def _fake_step(root: str, *parts: str, state: bool = True, committed: bool = True) -> None:
  d = "/".join((root,) + parts)
  fileio.makedirs(d + "/state" if state else d)
  if state:
    with fileio.open(d + "/state/x", "w") as f:
      f.write("x")
  if committed:
    atomic_io.write_text(d + "/" + checkpointing.COMMIT_FILE, "")


def test_checkpoint_step_discovery_under_a_url(ram_dir):
  _fake_step(ram_dir, "best", "500")
  _fake_step(ram_dir, "checkpoints", "750")
  _fake_step(ram_dir, "checkpoints", "1000", state=False)  # interrupted save: not a step
  _fake_step(ram_dir, "checkpoints", "1250", committed=False)  # orbax still writing it in place
  _fake_step(ram_dir, "checkpoints", "tmp-99")
  got = checkpointing.candidate_step_dirs(ram_dir)
  assert got == [(500, f"{ram_dir}/best/500"), (750, f"{ram_dir}/checkpoints/750")]
  assert checkpointing.candidate_step_dirs(f"{ram_dir}/checkpoints/750/") == [
      (750, f"{ram_dir}/checkpoints/750")]
  with pytest.raises(FileNotFoundError, match="does not exist"):
    checkpointing.candidate_step_dirs(f"{ram_dir}/nowhere")


def test_model_dir_config_check_under_a_url(ram_dir):
  cfg = "A = 1\nSAVE_EVERY_STEPS = 500\n"
  gin_cli.check_model_dir_config(ram_dir, cfg)
  with fileio.open(f"{ram_dir}/config.gin") as f:
    assert f.read() == cfg
  gin_cli.check_model_dir_config(ram_dir, "A = 1\nSAVE_EVERY_STEPS = 50\n")  # cadence only
  with pytest.raises(SystemExit, match="different configuration"):
    gin_cli.check_model_dir_config(ram_dir, "A = 2\nSAVE_EVERY_STEPS = 50\n")
  with fileio.open(f"{ram_dir}/config.gin") as f:
    assert f.read() == "A = 1\nSAVE_EVERY_STEPS = 50\n"  # the refused run wrote nothing


def test_eval_finds_the_model_dir_above_a_url_step_dir(ram_dir):
  atomic_io.write_text(f"{ram_dir}/run/config.gin", "A = 1\n")
  _fake_step(ram_dir, "run", "best", "500")
  assert main_eval.model_dir_of(f"{ram_dir}/run/best/500") == f"{ram_dir}/run"
  assert main_eval.model_dir_of(f"{ram_dir}/run") == f"{ram_dir}/run"
  assert main_eval.model_dir_of(f"{ram_dir}/other") == ""


def test_gin_reads_a_config_file_from_a_url(ram_dir):
  path = f"{ram_dir}/config.gin"
  atomic_io.write_text(path, "SOME_MACRO = 7\n")
  gin.clear_config()
  try:
    assert gin_cli.parse([path], ["OTHER = 'x'"], "") == [path]
    assert gin.query_parameter("%SOME_MACRO") == 7
  finally:
    gin.clear_config()


def test_gin_search_path_and_include_from_a_url(ram_dir):
  atomic_io.write_text(f"{ram_dir}/gin/part.gin", "PART = 3\n")
  atomic_io.write_text(f"{ram_dir}/gin/top.gin", "include 'part.gin'\nTOP = 4\n")
  gin.clear_config()
  try:
    assert gin_cli.parse(["top.gin"], [], f"{ram_dir}/gin") == [f"{ram_dir}/gin/top.gin"]
    assert (gin.query_parameter("%TOP"), gin.query_parameter("%PART")) == (4, 3)
  finally:
    gin.clear_config()


def test_infer_reads_a_history_from_a_url(ram_dir):
  path = f"{ram_dir}/history.json"
  atomic_io.write_text(path, json.dumps(
      {"user": "u1", "history": [{"title": "Heat (1995)", "rating": 5, "genres": "Action"}]}))
  users = main_infer.load_users(path)
  assert users[0]["user"] == "u1" and users[0]["history"][0]["genres"] == ("Action",)
  with pytest.raises(SystemExit, match="history file .* not found"):
    main_infer.load_users(f"{ram_dir}/missing.json")
