"""launch/tpu.py --dry_run prints the gcloud commands (they cannot run here)."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "tpu.py"
BASE = ["--tpu=persoma-v4", "--zone=us-central2-b", "--project=my-proj", "--dry_run"]


def _run(*args):
  proc = subprocess.run([sys.executable, str(LAUNCH), *args], capture_output=True, text=True,
                        timeout=60)
  return proc.returncode, [shlex.split(l) for l in proc.stdout.splitlines()], proc.stderr


def test_create_install_teardown():
  rc, cmds, _ = _run("create", *BASE, "--accelerator=v5litepod-8", "--spot")
  assert rc == 0 and len(cmds) == 1
  c = cmds[0]
  assert c[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "persoma-v4"]
  assert "--accelerator-type=v5litepod-8" in c and "--spot" in c
  assert "--zone=us-central2-b" in c and "--project=my-proj" in c
  rc, cmds, _ = _run("install", *BASE, "--branch=v1")
  remote = [a for a in cmds[0] if a.startswith("--command=")][0]
  assert "--worker=all" in cmds[0]
  assert "pip install" in remote and "constraints.txt" in remote and "jax[tpu]" in remote
  rc, cmds, _ = _run("teardown", *BASE)
  assert cmds[0][:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "persoma-v4"]
  assert "--quiet" in cmds[0]


def test_train_runs_persoma_train_on_all_workers_with_gin():
  rc, cmds, err = _run("train", *BASE, "--gin_file=gin/perceiver_frozen.gin",
                       "--model_dir=gs://b/runs/p", "--gin=MODEL_SIZE='base'",
                       "--gin=INITIAL_CHECKPOINT_PATH='gs://t5/ckpt'")
  assert rc == 0, err
  c = cmds[0]
  assert c[4] == "ssh" and "--worker=all" in c
  remote = shlex.split([a for a in c if a.startswith("--command=")][0][len("--command="):])
  i = remote.index(".venv/bin/persoma-train")
  args = remote[i + 1:]
  assert "--gin_file=gin/perceiver_frozen.gin" in args
  assert "--gin.MODEL_SIZE='base'" in args
  assert "--gin.INITIAL_CHECKPOINT_PATH='gs://t5/ckpt'" in args
  assert "--gin.MODEL_DIR='gs://b/runs/p'" in args


def test_batch_one_command_per_experiment_with_skip(tmp_path):
  exp = tmp_path / "e.txt"
  exp.write_text("# comment\na gin/mlp_full.gin MODEL_SIZE='base'\n\nb gin/uem.gin\n")
  rc, cmds, err = _run("batch", *BASE, f"--experiments={exp}", "--model_dir=gs://b/runs")
  assert rc == 0, err
  assert len(cmds) == 2
  first = [a for a in cmds[0] if a.startswith("--command=")][0]
  assert "gs://b/runs/a/eval_test.json" in first and "skip a" in first
  train_part = first.split(" else ", 1)[1].rsplit("; fi", 1)[0]
  args = shlex.split(train_part)
  assert "--gin.MODEL_SIZE='base'" in args and "--gin_file=gin/mlp_full.gin" in args
  assert "--gin.MODEL_DIR='gs://b/runs/a'" in args


@pytest.mark.parametrize("content,msg", [("a\n", "expected"), ("a x.gin\na y.gin\n", "duplicate"),
                                         ("a x.gin NOEQUALS\n", "expected")])
def test_bad_experiments_file_names_the_line(tmp_path, content, msg):
  exp = tmp_path / "e.txt"
  exp.write_text(content)
  rc, _, err = _run("batch", *BASE, f"--experiments={exp}", "--model_dir=gs://b")
  assert rc != 0 and msg in err and str(exp) in err


def test_train_without_model_dir_fails():
  rc, _, err = _run("train", *BASE, "--gin_file=gin/quickstart.gin")
  assert rc != 0 and "--model_dir" in err
