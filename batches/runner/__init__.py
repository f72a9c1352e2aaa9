"""The runner a django-q2 worker executes (worker.py) and its parts: the network loop (call_loop.py), one row's call
(row_call.py), the look-up before paying again (reconcile.py) and the upstream health checks (upstream_checks.py)."""
