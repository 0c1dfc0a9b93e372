"""``persoma-data embed``: precompute and cache catalog embeddings from the command line."""

import json

import pytest

from persoma.data import cli


def _run(capsys, *argv):
  code = cli.main(["embed", "--dataset=synthetic", "--encoder=hashing:16", *argv])
  out = capsys.readouterr()
  return code, out.out.strip().splitlines(), out.err


def test_embed_counts_distinct_texts_and_hits_cache(tmp_path, capsys):
  code, lines, _ = _run(capsys, f"--cache_dir={tmp_path}", "--formats=uem,title_score", "--json")
  assert code == 0 and len(lines) == 1
  first = json.loads(lines[-1])
  assert first["synthetic"] is True and first["encoder"] == "hashing-d16-s0"
  uem = first["formats"]["uem"]
  assert uem["encoded_texts"] == uem["distinct_texts"] and not uem["cache_hit"]
  assert uem["per_rating_texts"] == 3 * first["ratings"]
  assert uem["item_dim"] == 48 and first["formats"]["title_score"]["item_dim"] == 16
  # uem: one title text and one description per movie, plus one text per rating value
  assert first["movies"] * 2 < uem["distinct_texts"] <= first["movies"] * 2 + 10
  assert uem["ratio_vs_per_rating"] == pytest.approx(uem["per_rating_texts"] /
                                                     uem["distinct_texts"])
  assert uem["cache_path"].startswith(str(tmp_path))
  code, lines, _ = _run(capsys, f"--cache_dir={tmp_path}", "--formats=uem")
  again = json.loads(lines[-1])["formats"]["uem"]
  assert again["cache_hit"] and again["encoded_texts"] == 0
  assert any("cache hit" in line and "SYNTHETIC" in line for line in lines[:-1])


def test_embed_progress_and_vocab(tmp_path, capsys):
  code, lines, err = _run(capsys, f"--cache_dir={tmp_path}", "--formats=complete",
                          "--chunk_size=500", "--progress", "--vocab", "--vocab_size=500", "--json")
  result = json.loads(lines[-1])
  assert code == 0 and "items/s" in err and "ETA" in err
  assert result["formats"]["complete"]["encode_calls"] == -(
      -result["formats"]["complete"]["distinct_texts"] // 500)
  assert result["vocabulary"].startswith(str(tmp_path / "vocab" / "synthetic-v500-"))


def test_embed_bad_input(tmp_path, capsys):
  code, _, err = _run(capsys, f"--cache_dir={tmp_path}", "--formats=uem,bogus")
  assert code == 2 and "bogus" in err and "valid formats" in err
  code, _, err = _run(capsys, f"--cache_dir={tmp_path}", "--encoder=hashing:x")
  assert code == 2 and "hashing:x" in err
  for bad in ("0", "-3"):  # no empty cache file is written
    code, _, err = _run(capsys, f"--cache_dir={tmp_path / 'c'}", "--encoder=hashing",
                        f"--chunk_size={bad}")
    assert code == 2 and f"chunk_size={bad}" in err, err
  assert not list((tmp_path / "c").rglob("*.npz"))
