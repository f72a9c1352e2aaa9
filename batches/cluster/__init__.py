"""What a qcluster does besides running tasks: its hooks (hooks.py), its heartbeat (heartbeat.py) and who is alive
(nodes.py)."""
