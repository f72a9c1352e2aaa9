import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchsite.settings")
application = get_wsgi_application()

from batches.apps import start_recovery_sweep  # noqa: E402

start_recovery_sweep()
