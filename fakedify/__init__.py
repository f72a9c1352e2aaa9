"""The fake Dify: a stand-in for Dify's Service API for the demo, the tests and the benchmarks, never production.

Installed only with DJANGO_DEBUG or BATCHES_DEV_TOOLS on; run it with `manage.py fake_dify` (a separate process,
aiohttp). It speaks workflow, completion and chat apps, blocking and streaming, answers as Dify 1.13 writes them,
echoes the inputs, and has latency, injected faults, limits and its own stats.

- options.py   what it can be told (command line, POST /_fake/config); no web framework
- server.py    the routes, and serving until SIGTERM           state.py   shared state; runs start and finish here
- calls.py     the run calls (blocking answers)                streaming.py  SSE answers
- endpoints.py run details, stop, parameters                   control.py    /_fake/stats, calls, reset, config
- checks.py    what it refuses (keys, bodies, inputs)          faults.py     injected faults; limits.py  rpm, max-active
- run.py       one run and how it shows itself                 wire.py       Dify's JSON/SSE byte formats
- stats.py     its statistics                                  harness.py    start/stop it as a process (tests, bench)
- call_log.py  each run call's start and end (GET /_fake/calls), and the whole-run occupancy they give
- files.py     POST /v1/files/upload, file variables' checks, its uploads and the /_fake/files controls
"""
