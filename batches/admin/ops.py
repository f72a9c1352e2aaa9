"""The admin's read-only lists of the audit log and the notification outbox (imported by admin/model_admins.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from batches.models import AuditEntry, Notification


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written only by the services: nobody adds, edits or deletes an entry by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "face", "action", "batch", "workflow", "rows", "reason")
    list_filter = ("action", "face", "at", "workflow")
    search_fields = ("actor", "reason", "batch__name", "=batch__id")
    list_select_related = ("batch", "workflow")
    date_hierarchy = "at"


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "batch", "workflow", "event", "channel", "status", "tries", "answer")
    list_filter = ("status", "event", "channel", "workflow")
    search_fields = ("=batch__id", "answer")
    list_select_related = ("batch", "workflow")
