"""The other Dify endpoints: a run's details (GET /v1/workflows/run/{id}), stop (POST .../{task_id}/stop for the
three app kinds), the app's input form (GET /v1/parameters) and a file upload (POST /v1/files/upload)."""

from __future__ import annotations

import json

from aiohttp import web

from fakedify import checks, wire
from fakedify.state import FAKE


async def get_run(request: web.Request) -> web.Response:
    if not checks.authorized(request):
        return wire.unauthorized()
    run = request.app[FAKE].runs.get(request.match_info["run_id"])
    if run is None:
        return wire.error(404, "not_found", "Workflow run not found")
    inputs = json.dumps(run.inputs, ensure_ascii=False)
    data = {**run.data(), "inputs": inputs, "outputs": run.outputs() or {}}
    if run.status == "stopped":  # as in Dify 1.13: a stopped run is never marked finished (dify-real case 22)
        data.update(status="running", error=None, finished_at=None, elapsed_time=0.0)
    return wire.restx(200, data)


async def stop(request: web.Request) -> web.Response:
    if not checks.authorized(request):
        return wire.unauthorized()
    request.app[FAKE].stop(request.match_info["task_id"])
    return wire.restx(200, {"result": "success"})


async def parameters(request: web.Request) -> web.Response:
    if not checks.authorized(request):
        return wire.unauthorized()
    form = request.app[FAKE].options.variables
    return wire.restx(
        200, {"opening_statement": "", "user_input_form": form, "file_upload": {}, "system_parameters": {}}
    )


async def upload(request: web.Request) -> web.Response:
    if not checks.authorized(request):
        return wire.unauthorized()
    fake = request.app[FAKE]
    return await fake.files.upload(request, fake.options)
