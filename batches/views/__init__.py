"""The staff pages, one module per page family. Views are thin: reads come from `batches.selectors.batches`, changes
from `batches.services` (`lifecycle`, `rerun`, `workflows`), wording from `batches.views.presenters`.

- `access`     the permission check (names: `batches.roles`), the JSON endpoints' 403 (`staff_json`), safe `next` links
- `controls`   the batch buttons (`services.controls`) a page offers and what pressing one says; the concurrency
- `batches`    the batch list, a batch's page, its export and its buttons
- `failures`   a batch's failed rows and the retry form
- `executions` one row's page (its files too) and its "edit and retry"
- `results`    every row's inputs and outputs, filtered and searched
- `api`        the JSON twins: progress, failures, results, retry
- `new_batch`  upload (kept by `batches.imports.uploads`), preview (a ZIP: its table and files), import; a CSV template
- `rerun`      "Run again" as a new batch
- `compare`    two batches side by side, and the comparison's export
- `workflows`  the workflows page: list, add, edit, test the connection
- `upstream`   the "Check Dify now" button
- `health`     `GET /healthz` (no login)
- helpers: `presenters` (how things read on pages, their JSON twins and the admin), `previews` (what the New
  batch preview shows of an upload, worked out once and kept beside it)

URLs are in `batches/urls.py` (and `/healthz` in `batchsite/urls.py`).
"""
