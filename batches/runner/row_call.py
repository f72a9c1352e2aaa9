"""A row's call, files or not: the look-up of its earlier run, then the run itself, its result put on the runner's
event queue however the call ends (a crash becomes a failed try).

When its inputs name files of its ZIP, each file is uploaded once and its id sent, and uploaded again if Dify lost
it (`RowUploads`). The upload-once state (batches/services/file_uploads.py) is read and written by the runner's own
thread, asked through its event queue (an `errand` event), so the calls' thread never touches the database. An
upload is part of the row's call: it runs within the row's claim (so within the batch's concurrency and behind the
workflow's upstream circuit), takes a token of the workflow's rpm bucket of its own, and a failed upload fails the
try with the same error types as a call, retried by the same rules (the circuit counts it). Within one process,
rows naming the same file share one upload.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import re
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from batches.choices import ErrorType
from batches.conf import settings
from batches.dify import file_types
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult, OnStarted
from batches.imports import files
from batches.runner import reconcile
from batches.services import file_uploads, leases

logger = logging.getLogger(__name__)
WAIT_SECONDS = 0.5  # between looks while another process uploads a file
TOKEN_WAIT_SECONDS = 1.0  # between tries for an rpm token
LEASE_MARGIN = 30.0  # an upload lease outlives the upload's own deadline by this much
# file_factory's answer for an upload id its workspace (newer Dify: its end user) does not have. Only this one
# means "upload it again": "Invalid upload file id format" and "Invalid upload file id" are the row's own.
GONE = re.compile(r"(^|: )Invalid upload file\.?$")
T = TypeVar("T")
Known = tuple[int, str] | CallResult  # (file id, upload id), or why there is none

_shared: weakref.WeakKeyDictionary[DifyClient, dict[tuple[int, str], asyncio.Future[Known]]] = (
    weakref.WeakKeyDictionary()
)


async def call(
    client: DifyClient, app: AppSettings, claim: leases.Claim, *, owner: str, events: queue.Queue[Any]
) -> None:
    """Run the row's call and put its result on `events` (a `done` event); a `started` event tells its run id."""
    result = CallResult(ok=False, error_type=ErrorType.BAD_RESPONSE, error="the call did not finish")
    try:
        # After an interruption or a cut call, Dify is asked how the earlier run ended instead of paying for it twice.
        result = await reconcile.earlier_run(client, app, claim.resume_run_id) or await run(
            client, app, claim, owner=owner, events=events, on_started=announcer(claim, events)
        )
    except Exception as exc:  # a bug must not strand the row: record it as a failed try
        logger.exception("call for execution %s crashed", claim.execution_id)
        result = CallResult(ok=False, error_type=ErrorType.BAD_RESPONSE, error=f"internal error: {type(exc).__name__}")
    finally:
        events.put(("done", claim, result))


def announcer(claim: leases.Claim, events: queue.Queue[Any]) -> OnStarted:
    return lambda run_id, task_id: events.put(("started", claim, (run_id, task_id)))


async def run(
    client: DifyClient,
    app: AppSettings,
    claim: leases.Claim,
    *,
    owner: str,
    events: queue.Queue[Any],
    on_started: OnStarted | None = None,
) -> CallResult:
    user = user_for(claim)
    if await went_silent(app, claim, events):
        app = dataclasses.replace(app, response_mode="blocking")
    names = files.local_names(claim.inputs)
    if not names:
        return await client.run(app, claim.inputs, user=user, on_started=on_started)
    uploads = RowUploads(client, app, claim, owner, events)
    for attempt in range(2):
        ids = await uploads.upload_ids(names)
        if isinstance(ids, CallResult):
            return ids
        result = await client.run(app, files.with_upload_ids(claim.inputs, ids), user=user, on_started=on_started)
        if silent_stream(app, result):
            await uploads.forget(ids, older_only=True)  # perhaps a lost upload: the retry uploads old ones again
        if attempt or not upload_gone(result):
            return result
        logger.info("execution %s: Dify lost an upload (%s); uploading again", claim.execution_id, result.error)
        await uploads.forget(ids)
    raise AssertionError("unreachable")


async def went_silent(app: AppSettings, claim: leases.Claim, events: queue.Queue[Any]) -> bool:
    """Whether this try of a file row should be sent in blocking mode: its stream's last try went silent without
    announcing a run. Dify answers a file it refuses in streaming mode with one ping and silence (its worker
    checks the inputs, dify-real-files); only blocking mode says why, at once, so the row fails for its own
    reason instead of timing out try after try."""
    if app.response_mode != "streaming" or claim.number < 2 or not files.has_files(claim.inputs):
        return False
    return bool(await ask(events, claim, file_uploads.went_silent, claim.execution_id))


def user_for(claim: leases.Claim) -> str:
    """The `user` a row's calls and uploads are made as: its batch's, or with BATCHES_UPLOAD_SHARED_USER its
    workflow's (then every batch of the workflow reuses the others' uploads)."""
    return f"workflow-{claim.workflow_id}" if settings.BATCHES_UPLOAD_SHARED_USER else f"batch-{claim.batch_id}"


def silent_stream(app: AppSettings, result: CallResult) -> bool:
    """Dify answers invalid inputs in streaming mode with silence (dify-real case 07), a lost upload among them."""
    return app.response_mode == "streaming" and result.error_type == ErrorType.TIMEOUT


def upload_gone(result: CallResult) -> bool:
    """Dify's answer when an `upload_file_id` no longer exists (file_factory: "Invalid upload file")."""
    return result.error_type == ErrorType.INVALID_INPUT and bool(GONE.search(result.error.strip()))


class RowUploads:
    """One row's uploads: the ids of the files its inputs name."""

    def __init__(
        self, client: DifyClient, app: AppSettings, claim: leases.Claim, owner: str, events: queue.Queue[Any]
    ) -> None:
        self.client, self.app, self.claim, self.owner, self.events = client, app, claim, owner, events
        self.user = user_for(claim)
        self.known = _shared.setdefault(client, {})  # this process's uploads: (batch, name) → (file id, upload id)

    async def upload_ids(self, names: list[str]) -> dict[str, str] | CallResult:
        ids = {}
        for name in names:
            found = await self.shared(name)
            if isinstance(found, CallResult):
                return found
            ids[name] = found[1]
        return ids

    async def forget(self, ids: dict[str, str], *, older_only: bool = False) -> None:
        """Dify lost these uploads: drop them here and in the database (unless another id replaced one already).
        `older_only`: only those uploaded over BATCHES_UPLOAD_RECHECK_MINUTES ago (Dify may have lost them)."""
        for name, upload_id in ids.items():
            key = (self.claim.batch_id, name)
            future = self.known.get(key)
            found = future.result() if future is not None and future.done() and not future.cancelled() else None
            # Another row may have uploaded it again already (or be doing so): its new id stays.
            if isinstance(found, tuple) and found[1] == upload_id:
                forgotten = await self.ask(file_uploads.forget, found[0], upload_id=upload_id, older_only=older_only)
                if forgotten and self.known.get(key) is future:  # not a newer upload cached meanwhile
                    del self.known[key]

    async def shared(self, name: str) -> Known:
        """The file's (file id, upload id), read or uploaded once per process: the rows that need it meanwhile wait
        for that one upload, and later rows find it at once. A failure is not kept: the next row tries again."""
        key = (self.claim.batch_id, name)
        while key in self.known:
            future = self.known[key]
            await asyncio.wait({future})
            if not future.cancelled():
                return future.result()
        future = self.known[key] = asyncio.get_running_loop().create_future()
        try:
            found = await self.obtain(name)
            future.set_result(found)
            return found
        finally:
            if not future.done() or isinstance(future.result(), CallResult):
                future.cancel()  # no-op when done: the waiters then see the failure, later rows try again
                if self.known.get(key) is future:
                    del self.known[key]

    async def obtain(self, name: str) -> Known:
        """Wait while another process uploads the file (no failure, no retry spent: its lease bounds the wait, and
        an expired lease, or one held by a dead local process, is taken over); then use its id or upload it."""
        lease = self.app.timeout + LEASE_MARGIN
        while True:
            taken = await self.ask(
                file_uploads.take, self.claim.batch_id, name, owner=self.owner, lease_seconds=lease, user=self.user
            )
            if taken.file_id is None:
                return CallResult(ok=False).fail(ErrorType.INVALID_INPUT, f"{name!r} is not one of this batch's files")
            if taken.upload_id:
                return taken.file_id, taken.upload_id
            if taken.mine:
                return await self.upload(name, taken)
            await asyncio.sleep(WAIT_SECONDS)  # another process is uploading it

    async def upload(self, name: str, taken: file_uploads.Taken) -> Known:
        assert taken.file_id is not None
        if taken.path is None or not taken.path.is_file():
            await self.ask(file_uploads.release, taken.file_id, owner=self.owner)
            return CallResult(ok=False).fail(
                ErrorType.INVALID_INPUT, f"{name!r} is no longer kept (BATCHES_FILES_KEEP_DAYS): import the ZIP again"
            )
        while not await self.ask(file_uploads.upload_token, self.claim.workflow_id):
            await asyncio.sleep(TOKEN_WAIT_SECONDS)  # the workflow's rpm limit counts uploads too
        try:
            result = await self.client.upload(self.app, taken.path, filename=file_types.safe_name(name), user=self.user)
        except asyncio.CancelledError:  # the row was cancelled: free the file for the others at once
            self.events.put(("errand", self.claim, partial(file_uploads.release, taken.file_id, owner=self.owner)))
            raise
        if not result.ok or not result.outputs:
            await self.ask(file_uploads.release, taken.file_id, owner=self.owner)
            result.error = f"upload of {name!r}: {result.error}"
            return result
        await self.ask(file_uploads.store, taken.file_id, upload_id=str(result.outputs["id"]), user=self.user)
        return taken.file_id, str(result.outputs["id"])

    async def ask(self, function: Callable[..., T], *args: Any, **options: Any) -> T:
        return await ask(self.events, self.claim, function, *args, **options)


async def ask(
    events: queue.Queue[Any], claim: leases.Claim, function: Callable[..., T], *args: Any, **options: Any
) -> T:
    """Run a database function on the runner's thread (it owns the database) and wait for its answer."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def errand() -> None:
        try:
            value = function(*args, **options)
        except Exception as exc:  # handed to the call, which records it as a failed try
            loop.call_soon_threadsafe(_settle, answer, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, answer, value, None)

    events.put(("errand", claim, errand))
    return await answer


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
