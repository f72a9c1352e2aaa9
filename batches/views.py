from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@staff_member_required
@require_GET
def batch_list(request: HttpRequest) -> HttpResponse:
    return render(request, "batches/batch_list.html", {})
