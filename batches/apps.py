import logging
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
            start_recovery_sweep()


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
