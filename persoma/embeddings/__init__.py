"""Sentence encoders and the on-disk catalog embedding cache (no jax/tensorflow imports)."""

from persoma.embeddings.encoders import (DEFAULT_ST_MODEL, Encoder, HashingEncoder,
                                         SentenceTransformerEncoder, get_encoder)
from persoma.embeddings.cache import default_cache_dir
from persoma.embeddings.store import EmbeddingStore, EmbedStats

__all__ = [
    "DEFAULT_ST_MODEL", "Encoder", "HashingEncoder", "SentenceTransformerEncoder", "get_encoder",
    "EmbeddingStore", "EmbedStats", "default_cache_dir",
]
