"""Every state change of the app lives in this package, each one a guarded write.

`lifecycle` changes batches (import, start, pause, resume, cancel, retry); `engine` is what runners call (claim,
record, leases, sweep). Admin actions, views, commands and tasks only call these functions.
"""
