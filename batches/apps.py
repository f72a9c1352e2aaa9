import gc
import sys

from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Batches"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from batches import checks  # noqa: F401 - registers the deploy checks

        # Web servers (runserver included) sweep from batchsite/wsgi.py and asgi.py; no other command sweeps.
        if sys.argv[1:2] == ["qcluster"]:
            from django_q.signals import post_spawn

            from batches import tasks  # noqa: F401 - the workers fork from here: they inherit the imports
            from batches.cluster import hooks
            from batches.dify.client import tls_context
            from batches.services import recovery

            tls_context()  # and the certificate authorities
            # Nothing loaded so far is ever freed: out of the collector's sight, a worker's first full collection
            # no longer walks all of Django and the app (0.08-0.19 s, in the first wave of calls, in each worker).
            gc.freeze()
            hooks.clear_stale_stop_markers()
            recovery.start_recovery_sweep()
            hooks.hand_back_on_stop()
            hooks.beat_while_running()
            post_spawn.connect(recovery.wake_on_worker_spawn, dispatch_uid="batches-wake-on-spawn")
