"""Stable hash split of users (never Python's hash)."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from persoma.data import split


def test_fractions_are_respected_on_many_ids():
  names = split.split_of_users(range(20000))
  frac = {s: float(np.mean(names == s)) for s in split.SPLITS}
  assert abs(frac["train"] - 0.9) < 0.01
  assert abs(frac["validation"] - 0.05) < 0.006 and abs(frac["test"] - 0.05) < 0.006
  names = split.split_of_users(range(5000), fractions=(0.5, 0.25, 0.25))
  assert abs(np.mean(names == "test") - 0.25) < 0.03


def test_split_is_a_sha256_function_of_the_id():
  for uid in (1, 17, 6040, 123456789):
    x = int.from_bytes(hashlib.sha256(str(uid).encode()).digest()[:8], "big") / 2**64
    want = "train" if x < 0.9 else ("validation" if x < 0.95 else "test")
    assert split.user_split(uid) == want


def test_same_in_a_fresh_process_with_other_hash_seed():
  ids = list(range(1, 200))
  here = [split.user_split(i) for i in ids]
  code = ("from persoma.data import split; "
          f"print(','.join(split.user_split(i) for i in {ids!r}))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": "12345", "PATH": ""})
  assert out.stdout.strip().split(",") == here


def test_users_in_split_partition(tiny_data):
  parts = [split.users_in_split(tiny_data.user_ids, s) for s in split.SPLITS]
  joined = np.sort(np.concatenate(parts))
  np.testing.assert_array_equal(joined, np.arange(tiny_data.num_users))
  np.testing.assert_array_equal(split.users_in_split(tiny_data.user_ids, "all"),
                                np.arange(tiny_data.num_users))


def test_bad_arguments():
  with pytest.raises(ValueError, match="fractions"):
    split.user_split(1, fractions=(0.5, 0.5, 0.5))
  with pytest.raises(ValueError, match="train"):
    split.users_in_split([1, 2], "dev")
