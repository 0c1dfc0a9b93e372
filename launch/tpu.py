#!/usr/bin/env python3
"""Cloud TPU VM launcher for persoma: create a VM, install, train on all workers, run a batch
of experiments, tear down. Every subcommand only shells out to `gcloud`; `--dry_run` prints the
exact commands instead of running them.

  python launch/tpu.py create   --tpu=persoma-v4 --zone=us-central2-b --accelerator=v4-8
  python launch/tpu.py install  --tpu=persoma-v4 --zone=us-central2-b
  python launch/tpu.py train    --tpu=persoma-v4 --zone=us-central2-b \
      --gin_file=gin/perceiver_frozen.gin --gin_file=gin/pretrained/flan_t5_base.gin \
      --model_dir=gs://BUCKET/runs/perceiver
  python launch/tpu.py batch    --tpu=persoma-v4 --zone=us-central2-b --experiments=launch/experiments.txt \
      --gin_file=gin/pretrained/flan_t5_base.gin --model_dir=gs://BUCKET/runs
  python launch/tpu.py teardown --tpu=persoma-v4 --zone=us-central2-b

Flags shared by all subcommands: --tpu (VM name), --zone, --project (default: gcloud's),
--dry_run. `create`: --accelerator (v4-8, v5litepod-8, ...), --runtime (TPU software version),
--spot. `install`: --repo, --branch. `train`/`batch`: --gin_file (repeatable), --gin KEY=VALUE
(repeatable), --model_dir (gs:// so every worker and later runs see it), --data_dir.
The training command runs on every worker (`--worker=all`); on multi-host slices persoma-train
calls `jax.distributed.initialize()` itself (TPU_WORKER_HOSTNAMES is set by the TPU runtime).
A preempted (spot) VM sends SIGTERM: persoma-train saves a checkpoint and the same `train`
command resumes it.

Experiments file (`batch`): one run per line, `NAME GIN_FILE [KEY=VALUE ...]` separated by
spaces, values in gin syntax (`MODEL_SIZE='base'`, no spaces inside); `#` comments.
Each run writes to MODEL_DIR/NAME and is skipped when MODEL_DIR/NAME/eval_test.json exists.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from typing import Sequence

DEFAULT_REPO = "https://github.com/persoma/persoma.git"
REMOTE_DIR = "persoma"


def _base(a) -> list[str]:
  out = [f"--zone={a.zone}"]
  if a.project:
    out.append(f"--project={a.project}")
  return out


def _ssh(a, remote: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", a.tpu, *_base(a), "--worker=all",
          f"--command={remote}"]


def create_cmds(a) -> list[list[str]]:
  cmd = ["gcloud", "compute", "tpus", "tpu-vm", "create", a.tpu, *_base(a),
         f"--accelerator-type={a.accelerator}", f"--version={a.runtime}"]
  if a.spot:
    cmd.append("--spot")
  return [cmd]


def install_cmds(a) -> list[list[str]]:
  remote = " && ".join([
      f"(test -d {REMOTE_DIR} || git clone --branch {shlex.quote(a.branch)} "
      f"{shlex.quote(a.repo)} {REMOTE_DIR})",
      f"cd {REMOTE_DIR} && git fetch -q && git checkout -q {shlex.quote(a.branch)} "
      f"&& git pull -q --ff-only",
      "python3 -m venv .venv",
      ".venv/bin/pip install -q --upgrade pip",
      ".venv/bin/pip install -q -c constraints.txt -e '.[st]'",
      ".venv/bin/pip install -q 'jax[tpu]==0.10.2' "
      "-f https://storage.googleapis.com/jax-releases/libtpu_releases.html",
      ".venv/bin/python -c 'import jax; print(jax.device_count(), jax.devices()[0])'",
  ])
  return [_ssh(a, remote)]


def _train_remote(a, gin_files: Sequence[str], bindings: Sequence[str], model_dir: str) -> str:
  args = [f"--gin_file={f}" for f in gin_files]
  args += [f"--gin.{b}" for b in bindings]
  args.append(f"--gin.MODEL_DIR={model_dir!r}")
  if a.data_dir:
    args.append(f"--gin.DATA_DIR={a.data_dir!r}")
  return (f"cd {REMOTE_DIR} && .venv/bin/persoma-train "
          + " ".join(shlex.quote(x) for x in args))


def train_cmds(a) -> list[list[str]]:
  if not a.gin_file or not a.model_dir:
    raise SystemExit("error: train needs --gin_file and --model_dir")
  return [_ssh(a, _train_remote(a, a.gin_file, a.gin, a.model_dir))]


def parse_experiments(path: str) -> list[tuple[str, str, list[str]]]:
  """`NAME GIN_FILE [KEY=VALUE ...]` per line -> [(name, gin_file, bindings)]."""
  out, names = [], set()
  with open(path) as f:
    for n, line in enumerate(f, 1):
      line = line.split("#", 1)[0].strip()
      if not line:
        continue
      parts = line.split()  # values keep their gin quoting: MODEL_SIZE='base'
      if len(parts) < 2 or any("=" not in b for b in parts[2:]):
        raise SystemExit(f"error: {path}:{n}: expected 'NAME GIN_FILE [KEY=VALUE ...]'")
      if parts[0] in names:
        raise SystemExit(f"error: {path}:{n}: duplicate run name {parts[0]!r}")
      names.add(parts[0])
      out.append((parts[0], parts[1], parts[2:]))
  if not out:
    raise SystemExit(f"error: {path}: no experiments")
  return out


def batch_cmds(a) -> list[list[str]]:
  if not a.experiments or not a.model_dir:
    raise SystemExit("error: batch needs --experiments and --model_dir")
  cmds = []
  for name, gin_file, bindings in parse_experiments(a.experiments):
    run_dir = a.model_dir.rstrip("/") + "/" + name
    done = f"{run_dir}/eval_test.json"
    check = (f"if gsutil -q stat {shlex.quote(done)} 2>/dev/null || test -f {shlex.quote(done)}; "
             f"then echo 'skip {name} (done)'; else ")
    remote = check + _train_remote(a, [gin_file, *a.gin_file], [*a.gin, *bindings],
                                   run_dir) + "; fi"
    cmds.append(_ssh(a, remote))
  return cmds


def teardown_cmds(a) -> list[list[str]]:
  return [["gcloud", "compute", "tpus", "tpu-vm", "delete", a.tpu, *_base(a), "--quiet"]]


COMMANDS = {"create": create_cmds, "install": install_cmds, "train": train_cmds,
            "batch": batch_cmds, "teardown": teardown_cmds}


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="launch/tpu.py", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("command", choices=sorted(COMMANDS))
  p.add_argument("--tpu", required=True, help="TPU VM name")
  p.add_argument("--zone", required=True, help="e.g. us-central2-b")
  p.add_argument("--project", default=None, help="GCP project (default: gcloud config)")
  p.add_argument("--accelerator", default="v4-8", help="create: accelerator type")
  p.add_argument("--runtime", default="tpu-ubuntu2204-base", help="create: TPU VM version")
  p.add_argument("--spot", action="store_true", help="create: spot (preemptible) VM")
  p.add_argument("--repo", default=DEFAULT_REPO, help="install: git URL of persoma")
  p.add_argument("--branch", default="main", help="install: branch or tag")
  p.add_argument("--gin_file", action="append", default=[], help="train/batch: gin file")
  p.add_argument("--gin", action="append", default=[], metavar="KEY=VALUE",
                 help="train/batch: gin binding, passed as --gin.KEY=VALUE")
  p.add_argument("--model_dir", default=None, help="train/batch: output dir (gs://...)")
  p.add_argument("--data_dir", default=None, help="train/batch: MovieLens folder (DATA_DIR)")
  p.add_argument("--experiments", default=None, help="batch: experiments file")
  p.add_argument("--dry_run", action="store_true", help="print the gcloud commands only")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  a = build_parser().parse_args(argv)
  for b in a.gin:
    if "=" not in b:
      raise SystemExit(f"error: --gin {b!r}: expected KEY=VALUE")
  cmds = COMMANDS[a.command](a)
  for cmd in cmds:
    print(shlex.join(cmd), flush=True)
    if not a.dry_run:
      rc = subprocess.call(cmd)
      if rc:
        print(f"error: command failed with exit code {rc}", file=sys.stderr)
        return rc
  return 0


if __name__ == "__main__":
  sys.exit(main())
