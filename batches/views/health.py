"""`GET /healthz`: for load balancers and probes; no login, no secrets, at most three queries."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from batches.selectors import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while this server can serve (database answers, migrations applied), else 503; worker facts inform."""
    facts = health.check()
    return JsonResponse(public_facts(facts), status=200 if facts.serving else 503)


def public_facts(facts: health.Health) -> dict[str, Any]:
    """What anyone may read: states and counts, batch ids; no names, hosts or migration names."""
    seen = [worker["seen_at"] for worker in facts.workers]
    return {
        "status": "ok" if facts.serving else "unavailable",
        "database": "ok" if facts.database else "unreachable",
        "migrations": "unknown" if not facts.database else "pending" if facts.unapplied_migrations else "applied",
        "workers": {"clusters": len(facts.workers), "last_seen": max(seen) if seen else None},
        "stuck_batches": [batch["id"] for batch in facts.stuck],
        "waiting_for_dify": [batch["id"] for batch in facts.waiting_for_dify],
        # Counts only (names and hosts are not public): node names used by clusters on several machines, and
        # whether this server's own node name is held by another machine's cluster.
        "node_names": {"shared": len(facts.shared_node_names), "taken_here": bool(facts.node_name_taken_by)},
        "checked_at": timezone.now(),
    }
