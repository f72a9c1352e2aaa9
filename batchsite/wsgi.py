import os

from django.core.wsgi import get_wsgi_application

from batchsite.startup import require_secret_key, require_static_manifest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchsite.settings")
require_secret_key()
require_static_manifest()
application = get_wsgi_application()

from batches.services.recovery import start_recovery_sweep  # noqa: E402

start_recovery_sweep()
