"""Stable user split: train/validation/test by a hash of the user id (same on every machine)."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

SPLITS = ("train", "validation", "test")
SPLIT_CHOICES = SPLITS + ("all",)
DEFAULT_FRACTIONS = (0.9, 0.05, 0.05)


def _check(fractions: Sequence[float]) -> tuple[float, float, float]:
  f = tuple(float(x) for x in fractions)
  if len(f) != 3 or min(f) < 0 or abs(sum(f) - 1.0) > 1e-6:
    raise ValueError(f"split fractions must be 3 non-negative numbers summing to 1, got {f}")
  return f  # type: ignore[return-value]


def user_unit(user_id: int, salt: str = "") -> float:
  """A stable number in [0, 1) from SHA-256 of the decimal user id (never Python's hash)."""
  digest = hashlib.sha256(f"{salt}{int(user_id)}".encode()).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def user_split(user_id: int, fractions: Sequence[float] = DEFAULT_FRACTIONS,
               salt: str = "") -> str:
  """'train', 'validation' or 'test' for an original user id."""
  f = _check(fractions)
  x = user_unit(user_id, salt)
  if x < f[0]:
    return "train"
  if x < f[0] + f[1]:
    return "validation"
  return "test"


def split_of_users(user_ids: Sequence[int] | np.ndarray,
                   fractions: Sequence[float] = DEFAULT_FRACTIONS,
                   salt: str = "") -> np.ndarray:
  """``[U]`` array of split names for original user ids."""
  return np.array([user_split(int(u), fractions, salt) for u in user_ids], dtype=object)


def users_in_split(user_ids: Sequence[int] | np.ndarray, split: str,
                   fractions: Sequence[float] = DEFAULT_FRACTIONS, salt: str = "") -> np.ndarray:
  """``[k]`` int64 indices (into ``user_ids``) of the users in ``split`` ('all' = every user)."""
  if split not in SPLIT_CHOICES:
    raise ValueError(f"unknown split {split!r}; valid: {SPLIT_CHOICES}")
  n = len(user_ids)
  if split == "all":
    return np.arange(n, dtype=np.int64)
  names = split_of_users(user_ids, fractions, salt)
  return np.flatnonzero(names == split).astype(np.int64)
