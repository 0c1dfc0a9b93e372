"""Importing `persoma_tasks` registers persoma's SeqIO tasks (see persoma/seqio_tasks)."""
