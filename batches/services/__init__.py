"""Every state change of the app, each one a guarded write (a conditional UPDATE or a short `select_for_update`
block); follow-up work is enqueued with `transaction.on_commit`. Admin actions, views, commands and tasks only call
these functions. No function here holds a lock while calling the network.

- `lifecycle`: what people ask for: start, pause, resume, cancel, retry (edited inputs typed first), settings.
- `controls`: the batch controls (start, pause, resume, cancel, retry failed, repoint) as one table the batch's
  page and the admin both read: each one's service, permission, and words.
- `imports`: a new batch from a file (all of it or nothing), started if asked.
- `rerun`: run a batch's rows again as a new batch. `workflows`: workflow settings that guard the API key, and
  `save_workflow`, the one write path of a workflow (admin, page, command).
- `claims`: which rows a runner may call for now (claim, take-over of dead workers' rows, runner slots);
  `refills`: its SQL path for a claim that only replaces the caller's ended calls (PostgreSQL and SQLite).
- `results`: recording a call's result: automatic retry, backoff, and pausing a batch the app refuses;
  `fail_fast`: pausing a batch whose first finished rows all failed alike.
- `leases`: the `Claim` a runner holds; renewal, hand-back, interruption, and the upstream ids recovery looks up.
- `recovery`: the sweep and everything that triggers it (start-up, schedule, worker spawn).
- `throttle`: a workflow's rpm bucket and adaptive limit, shared by every process.
- `circuit`: a workflow's upstream circuit: its states, the streak of outage-class failures, which claims it admits.
  `upstream_health`: the circuit's health check (`GET /parameters`, one at a time, staff's probe too), its
  verdict, the refund of the tries an outage cost, and the partial outage.
- `transitions`: the one helper that changes a batch's status.
- `file_imports`: a ZIP's table and the files it names (for a preview, and kept with an import's batch).
  `file_uploads`: each file uploaded to Dify once and its id reused (leases, the rpm token, forgetting a lost
  upload), a rerun's files, the files' sweep.
- `notify`: the notification outbox (written with a batch's transition, sent after it: webhooks and emails).
  `audit`: who did what, written by the service that did it, with the actor its adapter passes.
"""
