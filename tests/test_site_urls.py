"""Only the URLs the app uses are mounted, and a server error with DEBUG off leaves its traceback in the log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path


def broken_view(request: HttpRequest) -> HttpResponse:
    raise ZeroDivisionError("deliberately broken view")


urlpatterns = [path("broken/", broken_view)]


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/accounts/password_reset/", "/accounts/password_change/", "/accounts/logout/"]
)
@pytest.mark.parametrize("staff", [False, True])
def test_the_auth_urls_the_app_does_not_use_are_gone(url: str, staff: bool, client: Client, admin_user) -> None:
    if staff:
        client.force_login(admin_user)

    get, post = client.get(url), client.post(url, {"email": "someone@example.com"})

    assert (get.status_code, post.status_code) == (404, 404)


def test_the_login_page_is_the_admins(client: Client, db: None) -> None:
    response = client.get("/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/admin/login/").status_code == 200


@pytest.fixture
def log_streams() -> Iterator[list[io.StringIO]]:
    """Every stream handler a `django.request` record reaches (pytest's own capture aside), writing to a string."""
    logger: logging.Logger | None = logging.getLogger("django.request")
    swapped: list[tuple[logging.StreamHandler, object]] = []
    while logger is not None:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not type(handler).__module__.startswith("_pytest"):
                swapped.append((handler, handler.setStream(io.StringIO())))
        logger = logger.parent if logger.propagate else None
    yield [handler.stream for handler, _ in swapped]
    for handler, stream in swapped:
        handler.setStream(stream)


@pytest.mark.urls(__name__)
def test_a_server_error_with_debug_off_logs_its_traceback(settings, db: None, log_streams: list[io.StringIO]) -> None:
    settings.DEBUG = False
    client = Client(raise_request_exception=False)

    response = client.get("/broken/")

    assert response.status_code == 500
    logged = "".join(stream.getvalue() for stream in log_streams)
    assert "Traceback" in logged and "ZeroDivisionError: deliberately broken view" in logged


def test_the_favicon_is_served_and_linked_from_every_page(admin_client: Client) -> None:
    icon = admin_client.get("/favicon.ico")

    assert icon.status_code == 302 and icon["Location"].endswith("batches/favicon.svg")
    assert b'rel="icon"' in admin_client.get("/").content
    assert b'rel="icon"' in admin_client.get("/admin/").content


def test_a_refused_page_is_the_sites_own_403_with_a_way_back(client: Client, django_user_model) -> None:
    client.force_login(django_user_model.objects.create_user("viewer", is_staff=True))

    response = client.get("/batches/new/")

    assert response.status_code == 403
    assert b"Not allowed" in response.content and b'href="/"' in response.content
