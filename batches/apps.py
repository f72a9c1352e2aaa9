import logging
import socket
import sys
import threading

from django.apps import AppConfig

logger = logging.getLogger("batches.recovery")
STARTUP_DELAY = 2.0


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Batches"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Web servers (runserver included) sweep from batchsite/wsgi.py and asgi.py; no other command sweeps.
        if sys.argv[1:2] == ["qcluster"]:
            from django_q.signals import post_spawn

            start_recovery_sweep()
            hand_back_on_stop()
            post_spawn.connect(wake_on_worker_spawn, dispatch_uid="batches-wake-on-spawn")


def start_recovery_sweep() -> None:
    """The start-up backstop of guarantee 5: deferred, in the background, never failing or delaying a start."""
    timer = threading.Timer(STARTUP_DELAY, _sweep_quietly)
    timer.daemon = True
    timer.name = "batches-startup-sweep"
    timer.start()


def _sweep_quietly() -> None:
    from django.db import connection

    from batches.services.recovery import sweep

    try:
        report = sweep()
        logger.info("start-up recovery sweep: %s batches looked at", len(report))
    except Exception as exc:  # an unmigrated or unreachable database must not stop the server
        logger.warning("start-up recovery sweep skipped: %s", exc)
    finally:
        connection.close()


def wake_on_worker_spawn(**kwargs: object) -> None:
    """A worker was (re)started, maybe after one died mid-slice: wake a runner so its rows are taken over within
    one lease instead of at the next scheduled sweep."""
    from batches.services.engine import has_work, wake_runners

    try:
        if has_work():
            wake_runners()
    except Exception as exc:
        logger.warning("could not wake a runner: %s", exc)


def hand_back_on_stop() -> None:
    """On SIGTERM/SIGINT, ask this cluster's runners to hand their rows back instead of finishing their slice.

    django-q2 gives its workers no stop signal, so the cluster's own handler is wrapped: it marks the runner
    slots held by this cluster's workers (their owner names the sentinel's pid), which runners check every second.
    """
    from django_q.cluster import Cluster

    original = Cluster.sig_handler

    def sig_handler(self: Cluster, signum: int, frame: object) -> None:
        from batches.services.engine import request_stop

        if self.sentinel is not None:
            try:
                request_stop(f"{socket.gethostname()}:{self.sentinel.pid}:")
            except Exception as exc:  # the stop itself must go on
                logger.warning("could not ask the runners to stop: %s", exc)
        original(self, signum, frame)

    Cluster.sig_handler = sig_handler  # type: ignore[method-assign]
