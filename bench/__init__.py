"""Benchmarks, each run as ``python -m bench.<name>`` from the repository root
(``make bench`` runs them all; ``tests/test_benches.py`` runs each at tiny sizes).
Shared helpers live in ``bench.harness``; nothing here imports from ``tests/``."""
