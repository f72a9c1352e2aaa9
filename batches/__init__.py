"""Batches: run large batches of Dify app calls reliably (see README "How it works" and shared/design.md).

- `conf` (every BATCHES_* setting, its default and what it does), `choices` (statuses, error types, the error
  families), `models/` (the twelve models, one module per concern).
- `services/`: every state change (its `__init__` is the map). `selectors/`: every read pages and commands make.
- `runner/` (what a django-q2 worker runs: claims, calls, results, the look-up before paying again), `tasks` (the
  django-q2 entry points), `cluster/` (a qcluster's hooks, heartbeat, and who is alive), `apps`.
- `dify/`: the Dify client (its `__init__` is the map). `delivery`: sending a notification (webhook, email).
- `imports/`: everything an import file goes through (readers, mapping, inputs, files, ZIPs); `exports/`.
- `views/`, `forms/`, `display/`, `admin/`, `urls`, `middleware`, `templates/`: the staff pages.
- `management/commands/`: the command line of design.md. `checks`, `roles`: operations. `db/`: the database's
  clock, model fields, encryption at rest, case folding.
"""
