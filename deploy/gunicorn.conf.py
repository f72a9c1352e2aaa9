"""gunicorn settings: `gunicorn -c deploy/gunicorn.conf.py batchsite.wsgi` (deploy/batches-web.service).

Command-line options override these (`--bind`, `--workers`), and so does GUNICORN_CMD_ARGS.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread, not the default sync worker: an export streams (StreamingHttpResponse, chunked) for as long as the
# client takes to read it. A sync worker would be busy for all that time and, since it reports to the master only
# between requests, be killed by `timeout` in the middle of a long download. gthread reports from its main thread,
# so a long stream is never killed, and the other threads keep answering the progress polls meanwhile. Async
# workers (gevent, eventlet) would need monkey-patching, which the ORM and psycopg do not expect.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 60
graceful_timeout = 30  # a stop lets requests in progress finish for this long
keepalive = 5
accesslog = "-"
errorlog = "-"
# Trust X-Forwarded-* only from the reverse proxy on this machine (see README "HTTPS behind a proxy").
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# gunicorn's own default trusts X-Forwarded-Proto, X-Forwarded-Ssl and X-Forwarded-Protocol from those addresses
# and then tells Django the request was HTTPS, whatever DJANGO_TRUST_X_FORWARDED_PROTO says. Trust the one header
# Django is told to trust, and only when it is.
_trusted = os.environ.get("DJANGO_TRUST_X_FORWARDED_PROTO", "").strip().lower() in {"1", "true", "yes", "on"}
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"} if _trusted else {}
