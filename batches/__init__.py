"""Batches: run large batches of Dify app calls reliably (see README "How it works" and shared/design.md).

- `choices` (statuses, error types, the error families), `models` (Workflow, BatchTask, Execution, Attempt,
  BatchFile and the shared runner state), `fields`, `crypto` (API keys encrypted at rest).
- `services/`: every state change (its `__init__` is the map). `selectors*`: every read the pages and commands make.
- `runner` (what a django-q2 worker runs: claims, calls, results), `reconcile` (asking Dify how an interrupted run
  ended), `tasks` (the django-q2 entry points), `cluster` (a qcluster's stop marker and heartbeat), `apps`.
- `dify/`: the Dify client (its `__init__` is the map).
- `importers` (columns, types, limits) over `readers` (CSV, XLSX, JSONL) and `inputs`; `exporters`, `compare_export`.
- File inputs: `files` (a cell as Dify's file mapping), `zip_import` (a ZIP's checks and unpacking), `file_calls`
  (a row's uploads within its call, asked of the runner's thread), `selectors_files` (a row's files for its page).
- `views/`, `presenters`, `forms*`, `admin`, `urls`, `templates/`: the staff pages.
- `management/commands/`: the command line of design.md. `health`, `heartbeat`, `checks`, `csp`, `roles`: operations.
"""
