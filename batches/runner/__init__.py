"""The runner a django-q2 worker executes (worker.py) and its parts: the network loop (call_loop.py), one row's call
(row_call.py), the look-up before paying again (reconcile.py), the upstream health checks (upstream_checks.py), the
results waiting to be written (backlog.py) and the timing of its periodic chores (pacer.py)."""
