"""A probe of a workflow's upstream asked for by staff (`probe_upstream`, the batch page's button).

One cheap call that costs no tokens (`GET /parameters`): any answer but a 5xx shows Dify is up and closes the
circuit, so the batch resumes at once instead of at the next scheduled probe; a failure keeps it open.
"""

from __future__ import annotations

import logging

import httpx

from batches import upstream_hosts
from batches.models import Workflow
from batches.selectors import Upstream
from batches.services import circuit, engine
from batches.services.lifecycle import app_settings
from batches.upstream_hosts import UpstreamRefused

logger = logging.getLogger(__name__)


def probe(workflow: Workflow, timeout: float = 10) -> Upstream:
    failure = upstream_failure(workflow, timeout)
    upstream = circuit.record_probe(workflow_id=workflow.pk, failure=failure)
    if not upstream.waiting:
        engine.wake_runners()
    return upstream


def upstream_failure(workflow: Workflow, timeout: float) -> str:
    """'' when the upstream answers; else an outage description that tells no port or body apart."""
    app = app_settings(workflow)
    url = app.base_url.rstrip("/") + "/parameters"
    try:
        upstream_hosts.check_url(app.base_url)
    except (UpstreamRefused, ConnectionError) as exc:
        return f"app_error: {exc}"
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as http:
            response = http.get(url, headers={"Authorization": f"Bearer {app.api_key}"})
    except httpx.TimeoutException:
        return "timeout: the upstream did not answer in time"
    except httpx.HTTPError:
        return "connection: the upstream could not be reached"
    if response.status_code >= 500:
        return f"HTTP {response.status_code} upstream_error"
    return ""
