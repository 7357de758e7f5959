"""Delivery-path benchmark, ``python -m bench.pipeline``: one module per phase
(``ceiling`` (a), ``sink`` (b) and (k), ``flow`` (c) and (d), ``quix`` (e)), the
child processes of the whole path in ``path``; ``__main__`` runs them and prints
the summary."""
