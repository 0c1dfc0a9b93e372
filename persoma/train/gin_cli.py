"""T5X-style gin flags shared by `persoma-train`, `persoma-eval` and `persoma-infer`.

  --gin_file=FILE            repeatable; resolved against --gin_search_paths, then the cwd;
                             a URL (gs://bucket/run/config.gin) is read as it is
  --gin.KEY=VALUE            repeatable binding (e.g. --gin.MODEL_DIR="'/tmp/run'")
  --gin_bindings=KEY=VALUE   the same, T5X's older spelling
  --gin_search_paths=A,B     comma-separated directories (or gs:// URLs) for --gin_file and
                             `include`

`include 'runs/train.gin'` is looked up relative to the cwd first, then along the search path;
a same-named directory in the cwd without that file (the `runs/` that `make quickstart`
creates) does not get in the way.

Later files and bindings win. The repository's `gin/` directory is always on the search path
(it is found beside the package, so persoma runs from a checkout or an editable install, as
every documented install does; the gin files are not packaged into a wheel).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import gin

from persoma import atomic_io
from persoma import fileio

REPO_GIN_DIR = Path(__file__).resolve().parents[2] / "gin"


def _is_readable_url(path: str) -> bool:
  return fileio.is_url(path) and fileio.exists(path)


# gin reads local files with `open`; this lets --gin_file (and a model dir's config.gin) be a
# gs:// URL, as in T5X.
gin.config.register_file_reader(fileio.open, _is_readable_url)


def _namespace_safe(exists):
  """gin's Python-package existence check, answering False where it would crash.

  For `include 'runs/train.gin'` gin tries, before the gin/ search path, `runs` as a Python
  package. A `runs/` directory in the current directory (which `python -m` puts on sys.path;
  `make quickstart` creates one) is a namespace package without a file, and gin's check raised
  `TypeError: expected str, bytes or os.PathLike object, not NoneType`.
  """

  def check(path):
    try:
      return exists(path)
    except TypeError:
      return False

  check.persoma_namespace_safe = True
  return check


def _guard_system_path_reader() -> bool:
  """Wraps gin's package-path existence check (gin keeps its readers in a module list)."""
  from gin import resource_reader  # pylint: disable=g-import-not-at-top
  readers = getattr(gin.config, "_FILE_READERS", None)
  if not isinstance(readers, list):
    return False
  for i, (reader, exists) in enumerate(readers):
    if exists is resource_reader.system_path_file_exists:
      readers[i] = (reader, _namespace_safe(exists))
  return any(getattr(e, "persoma_namespace_safe", False) for _, e in readers)


_guard_system_path_reader()


def split_gin_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Pulls `--gin.KEY=VALUE` out of argv: returns (bindings, remaining argv)."""
  bindings, rest = [], []
  it = iter(argv)
  for arg in it:
    if arg.startswith("--gin."):
      body = arg[len("--gin."):]
      if "=" not in body:
        try:
          body = f"{body}={next(it)}"
        except StopIteration:
          raise SystemExit(f"error: {arg} needs a value (--gin.KEY=VALUE)") from None
      bindings.append(body)
    else:
      rest.append(arg)
  return bindings, rest


def gin_parser(prog: str, description: str | None, argv: Sequence[str] | None
               ) -> tuple[argparse.ArgumentParser, list[str], list[str]]:
  """A command's parser with the T5X gin flags, and argv split into (gin bindings, the rest).

  `argv` None means `sys.argv[1:]`; the caller adds its own flags and parses the rest.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  bindings, rest = split_gin_args(argv)
  parser = argparse.ArgumentParser(prog=prog, description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_gin_flags(parser)
  return parser, bindings, rest


def add_gin_flags(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--gin_file", action="append", default=[],
                      help="gin file (repeatable; later files win)")
  parser.add_argument("--gin_bindings", action="append", default=[],
                      help="gin binding KEY=VALUE (repeatable); same as --gin.KEY=VALUE")
  parser.add_argument("--gin_search_paths", default="",
                      help="comma-separated directories searched for gin files")


def search_paths(arg: str) -> list[str]:
  paths = [p for p in arg.split(",") if p] + [str(REPO_GIN_DIR), os.getcwd()]
  out = []
  for p in paths:
    p = fileio.absolute(p)
    if p not in out:
      out.append(p)
  return out


def _resolve(f: str, paths: list[str]) -> str:
  if fileio.isfile(f):
    return f
  for p in paths:
    cand = os.path.join(p, f)
    if fileio.isfile(cand):
      return cand
    if f.startswith("gin/") and fileio.isfile(os.path.join(p, f[4:])):
      return os.path.join(p, f[4:])
  raise SystemExit(f"error: gin file {f!r} not found; searched {paths} "
                   "(add a directory with --gin_search_paths)")


def parse(files: Sequence[str], bindings: Sequence[str], search: str,
          skip_unknown: bool = False) -> list[str]:
  """Parses gin files + bindings with clear errors; returns the resolved file paths."""
  paths = search_paths(search)
  for p in paths:
    gin.add_config_file_search_path(p)
  resolved = [_resolve(f, paths) for f in files]
  try:
    gin.parse_config_files_and_bindings(resolved, list(bindings), skip_unknown=skip_unknown)
  except TypeError as e:  # gin's package-path include lookup, if _guard_system_path_reader fails
    if "NoneType" not in str(e) or "include" not in str(e):
      raise
    raise SystemExit(
        f"error: gin could not resolve an include: {e}\n  a directory in the current "
        f"directory ({os.getcwd()}) named like the include's folder is taken for a Python "
        "package; run from another directory or rename it") from None
  except (ValueError, KeyError, IOError, SyntaxError, ImportError) as e:
    msg = str(e)
    m = re.match(r"No bindings specified for '(?:[^']*/)?(%s)/gin\.macro'" % _MACRO_NAME, msg)
    if m:
      raise SystemExit(_unbound_macro_error(m.group(1), resolved, bindings, paths)) from None
    hint = ""
    m = re.search(r"No configurable matching '([^']+)'", msg)
    if m:
      hint = (f"\n  unknown gin key {m.group(1)!r}: check the spelling and that its module "
              "is imported in the gin file (`from persoma.train import ...`).")
    raise SystemExit(f"error: bad gin configuration: {type(e).__name__}: {msg}{hint}\n"
                     f"  files: {resolved}\n  bindings: {list(bindings)}\n"
                     f"  search path: {paths}") from None
  warn_unreferenced_macros(bindings)
  return resolved


_MACRO_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_MACRO_BINDING_RE = re.compile(rf"^\s*({_MACRO_NAME})\s*=")


def unreferenced_macros(bindings: Sequence[str], config_str: str | None = None) -> list[str]:
  """Macros bound by `bindings` (`NAME=value`, no dot) that no parsed binding uses as `%NAME`.

  gin accepts them, as T5X does, but such a binding changes nothing: mostly a typo
  (`--gin.TRAIN_STEP=100`) or a macro of a gin file that was not loaded.
  """
  config_str = gin.config_str() if config_str is None else config_str
  names = {m.group(1) for b in bindings if (m := _MACRO_BINDING_RE.match(b))}
  return sorted(names - _used_macros(config_str))


def _used_macros(config_str: str) -> set[str]:
  """Macro names referenced as `%NAME` in a gin config string."""
  return set(re.findall(rf"%({_MACRO_NAME})", config_str))


def _bound_macros(config_str: str) -> set[str]:
  """Macro names bound (`NAME = ...` at the start of a line) in a gin config string."""
  return {m.group(1) for l in config_str.splitlines() if (m := _MACRO_BINDING_RE.match(l))}


def close_names(name: str, candidates: Iterable[str]) -> str:
  """` (did you mean A, B?)` for the names in `candidates` closest to `name`, or ''."""
  close = difflib.get_close_matches(name, sorted(candidates), n=3)
  return f" (did you mean {', '.join(close)}?)" if close else ""


_INCLUDE_RE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""")


def _gin_lines(path: str, paths: Sequence[str], seen: set[str]) -> Iterator[tuple[str, int, str]]:
  """(file, line number, line) of `path` and, in place of each `include`, the included file
  (found as gin finds it: as given, then along `paths`)."""
  if path in seen or not fileio.isfile(path):
    return
  seen.add(path)
  with fileio.open(path) as f:
    lines = f.read().splitlines()
  for number, line in enumerate(lines, 1):
    yield path, number, line
    m = _INCLUDE_RE.match(line)
    if m:
      inc = m.group(1)
      cands = [inc] if os.path.isabs(inc) or fileio.is_url(inc) else [
          os.path.join(p, inc) for p in ["", *paths]]
      found = next((c for c in cands if fileio.isfile(c)), None)
      if found:
        yield from _gin_lines(found, paths, seen)


def _unbound_macro_error(name: str, files: Sequence[str], bindings: Sequence[str],
                         paths: Sequence[str]) -> str:
  """The message for gin's `No bindings specified for 'NAME/gin.macro'`: where `%NAME` is used
  and the closest bound macro names (instead of gin's dump of the whole config)."""
  use = re.compile(rf"%{name}(?![A-Za-z0-9_])")
  seen: set[str] = set()
  uses = [f"{f}, line {n}: {l.strip()}" for path in files
          for f, n, l in _gin_lines(path, paths, seen) if use.search(l.split("#", 1)[0])]
  uses += [f"binding --gin.{b}" for b in bindings if use.search(b)]
  where = "".join(f"\n  used in {u}" for u in uses[:5]) or "\n  (no gin file line found)"
  return (f"error: gin macro %{name} is used but never bound"
          f"{close_names(name, _bound_macros(gin.config_str()))}{where}\n"
          f"  bind it (--gin.{name}=...) or correct the name")


def warn_unreferenced_macros(bindings: Sequence[str]) -> list[str]:
  """Logs a warning per unreferenced macro binding, with the closest macros the config uses."""
  config_str = gin.config_str()
  unused = unreferenced_macros(bindings, config_str)
  used = sorted(_used_macros(config_str))
  for name in unused:
    logging.warning("gin binding %s=...: no gin file or binding uses %%%s, so it changes "
                    "nothing%s", name, name, close_names(name, used))
  return unused


#: Macros a resumed run may change, so they are not compared with the saved `config.gin`: how
#: often it saves and how many checkpoints it keeps (resuming is exact from any checkpoint), and
#: where the run lives (a copied or moved dir, or its path spelled relative vs absolute).
RESUMABLE_MACROS = ("SAVE_EVERY_STEPS", "KEEP_CHECKPOINTS", "MODEL_DIR")
_RESUMABLE_RE = re.compile(r"^(%s) = " % "|".join(RESUMABLE_MACROS))


def _split_resumable(config_str: str) -> tuple[list[str], dict[str, str]]:
  """`config_str`'s bindings (each with its indented continuation lines: gin wraps a long value
  as `MODEL_DIR = \\` and the value indented below) as (the compared ones, {resumable macro:
  its binding})."""
  chunks: list[str] = []
  for line in config_str.splitlines():
    if chunks and line[:1].isspace():
      chunks[-1] += "\n" + line
    else:
      chunks.append(line)
  resumable = {m.group(1): c for c in chunks if (m := _RESUMABLE_RE.match(c))}
  return [c for c in chunks if not _RESUMABLE_RE.match(c)], resumable


def refuse_other_config(model_dir: str, config_str: str) -> str | None:
  """SystemExit if `model_dir` holds a `config.gin` of another run; returns the saved text.

  Differences in `RESUMABLE_MACROS` alone are allowed. Nothing is written (persoma-train calls
  this first, and `check_model_dir_config` once training starts).
  """
  path = os.path.join(model_dir, "config.gin")
  if not fileio.exists(path):
    return None
  with fileio.open(path) as f:
    old = f.read()
  if old != config_str and _split_resumable(old)[0] != _split_resumable(config_str)[0]:
    diff = "\n".join(list(difflib.unified_diff(
        old.splitlines(), config_str.splitlines(), "config.gin (saved)", "this run",
        lineterm="", n=0))[:40])
    raise SystemExit(
        f"error: model dir {model_dir} holds a run with a different configuration "
        f"({path}). Use a new MODEL_DIR, or delete the directory to start over.\n{diff}")
  return old


def check_model_dir_config(model_dir: str, config_str: str) -> None:
  """Refuses to reuse a model dir that holds a different `config.gin`; writes it otherwise.

  Differences in `RESUMABLE_MACROS` alone are allowed: the file is rewritten with the new
  values (so a moved run's `config.gin` names where it is now).
  """
  path = os.path.join(model_dir, "config.gin")
  old = refuse_other_config(model_dir, config_str)
  if old == config_str:
    return
  if old is not None:
    before, now = _split_resumable(old)[1], _split_resumable(config_str)[1]
    changed = [m for m in RESUMABLE_MACROS if before.get(m) != now.get(m)]
    logging.info("%s: %s changed; resuming the same run", path, ", ".join(changed))
  atomic_io.write_text(path, config_str)


class _DropOrbaxInfo(logging.Filter):
  """Drops orbax INFO chatter and gin's search-path probing lines."""

  def filter(self, record):
    msg = str(record.msg)
    if msg.startswith(("Path not found", "system_path_file_exists")):
      return False
    return record.levelno >= logging.WARNING or "orbax" not in record.pathname


def setup_logging(verbose: bool = False) -> None:
  """Readable INFO lines on stderr (orbax's chatter only at WARNING+ unless verbose)."""
  logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                      format="%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S")
  if not verbose:
    for h in logging.getLogger().handlers:
      h.addFilter(_DropOrbaxInfo())
  for name in ("jax._src.xla_bridge", "absl"):
    logging.getLogger(name).setLevel(logging.WARNING if name != "absl" else logging.INFO)
  try:
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    absl_logging.use_python_logging()
  except Exception:  # pragma: no cover
    pass
