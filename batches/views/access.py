"""Who may do what on the staff pages: the permission check (the names are in `batches.roles`), and the JSON
endpoints' 403."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext

View = Callable[..., HttpResponse]


def require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def staff_json(view: View) -> View:
    """Like staff_member_required, but answers a JSON 403 instead of redirecting to the login page (and a JSON 404
    instead of the HTML page when the object is missing)."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            return JsonResponse({"error": gettext("Staff login required.")}, status=403)
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return JsonResponse({"error": gettext("Not found.")}, status=404)

    return checked


def next_url(request: HttpRequest, default: str) -> str:
    """The posted `next` page if it is on this site, else `default`."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure())
    return target if safe else default


def first_error(form: Any) -> str:
    return next(iter(form.errors.values()))[0]
