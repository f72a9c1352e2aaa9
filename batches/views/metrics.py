"""`GET /metrics` for Prometheus: 404 unless BATCHES_METRICS_TOKEN is set, 403 without its bearer token (or from
an address outside BATCHES_METRICS_ALLOWED_IPS, when that is set)."""

from __future__ import annotations

import hmac
import ipaddress

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from batches.conf import settings
from batches.selectors import metrics as collected


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.BATCHES_METRICS_TOKEN
    if not token:
        raise Http404  # off by default: the endpoint does not exist
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()) or not _address_allowed(request):
        return HttpResponse("bearer token required\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(collected.registry()), content_type=CONTENT_TYPE_LATEST)


def _address_allowed(request: HttpRequest) -> bool:
    allowed = settings.BATCHES_METRICS_ALLOWED_IPS
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(item, strict=False) for item in allowed)
