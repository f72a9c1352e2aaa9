from django.apps import AppConfig


class FakeDifyConfig(AppConfig):
    """A development tool: installed only with DJANGO_DEBUG or BATCHES_DEV_TOOLS on (batchsite/settings.py)."""

    name = "fakedify"
    verbose_name = "Fake Dify (development)"
