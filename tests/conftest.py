"""Shared test helpers: the ../shared data location and a tiny synthetic dataset.

Fixtures:
  tiny_data: a small synthetic MovieLensData (60 users, ~80 movies), built once per session.
  shared_dir: Path of ../shared beside the repo root (may not exist).
  movielens_dir: Path of ../shared/movielens, or the test is skipped with a clear message.
  plan, program_env: the reproduction harness on synthetic settings (tests/repro_support.py,
    imported only by the tests that use them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
MOVIELENS_DIR = SHARED_DIR / "movielens"


def require_movielens(release: str = "ml-1m") -> Path:
  """``../shared/movielens`` if ``release`` is there, else pytest.skip with the reason."""
  folder = MOVIELENS_DIR / release
  if not folder.is_dir():
    pytest.skip(f"shared MovieLens data absent: {folder} not found (see ../shared/movielens/"
                "README.md); this test needs the real release files")
  return MOVIELENS_DIR


def make_tiny_data(seed: int = 0):
  """A small synthetic MovieLensData (fast: ~0.1 s)."""
  from persoma.data import load_dataset  # pylint: disable=g-import-not-at-top
  return load_dataset("synthetic", num_users=60, num_movies=80, min_ratings_per_user=25,
                      mean_ratings_per_user=40, seed=seed, min_item_ratings=5,
                      min_user_ratings=20)


@pytest.fixture(scope="session")
def tiny_data():
  return make_tiny_data()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
  return SHARED_DIR


@pytest.fixture
def movielens_dir() -> Path:
  return require_movielens("ml-1m")


@pytest.fixture(scope="session")
def ml1m():
  """Real ml-1m with its shared TMDB descriptions (loaded once per session), or skip."""
  root = require_movielens("ml-1m")
  from persoma.data import load_dataset  # pylint: disable=g-import-not-at-top
  return load_dataset("movielens/1m", data_dir=root, descriptions="auto")


@pytest.fixture()
def plan():
  """The reproduction plan (benchmarks/repro) on synthetic settings, fake token counts."""
  import repro_support  # pylint: disable=g-import-not-at-top
  return repro_support.synthetic_plan()


@pytest.fixture()
def program_env(tmp_path, monkeypatch):
  """reproduce.Program with a fake executor; see repro_support.program_env."""
  import repro_support  # pylint: disable=g-import-not-at-top
  return repro_support.program_env(tmp_path, monkeypatch)
