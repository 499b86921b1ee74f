"""How a run ends when its provider does not end it: failures with their reasons, expiry at
RUN_MAX_SECONDS, an interrupted start, a database error. Each is stored through `record`.
"""

import logging

from django.conf import settings
from django.db import DatabaseError, OperationalError

from ..engines.base import Engine, RemoteMessage, RunUpdate
from ..exceptions import ProviderError
from ..models import Run, RunStatus
from .store import record

log = logging.getLogger(__name__)

UNEXPECTED = ProviderError(
    "unexpected_error",
    "Something unexpected went wrong with this answer (it is in the site's log). Try again.",
)


def failure(error: ProviderError) -> RunUpdate:
    return RunUpdate(status=RunStatus.FAILED, error_code=error.code, error_message=error.message)


def interrupted() -> RunUpdate:
    return RunUpdate(
        status=RunStatus.FAILED,
        error_code="interrupted",
        error_message="The run was interrupted before the provider received it.",
    )


async def cancel_quietly(engine: Engine, run: Run) -> None:
    """Stop the run on the provider, best effort: we are ending it here either way."""
    try:
        await engine.cancel(run)
    except ProviderError as error:
        log.warning("run %s: cancelling it on the provider failed: %s", run.pk, error)


async def expire(engine: Engine, run: Run, said_so_far: list[RemoteMessage] = ()) -> None:
    """Stop a run that took longer than RUN_MAX_SECONDS; what it had written (streamed here)
    is kept as a partial answer."""
    await cancel_quietly(engine, run)
    await record(
        run,
        RunUpdate(
            status=RunStatus.EXPIRED,
            messages=list(said_so_far),
            error_code="expired",
            error_message=(
                f"No answer after {settings.RUN_MAX_SECONDS} seconds; the run was stopped."
            ),
        ),
    )


async def end_after_database_error(run: Run, error: DatabaseError) -> None:
    """A database error stopped this driver. A busy or lost database may well answer the next
    driver: the run is handed on (its lease released; the worker or a socket takes it up). A
    write that cannot succeed would fail the same way again: the run fails with a reason,
    unless even that cannot be stored."""
    if isinstance(error, OperationalError):
        log.warning("run %s: database error (%s); handing the run on", run.pk, error)
        return
    log.error("run %s: its progress could not be stored (%s); failing it", run.pk, error)
    try:
        await record(
            run,
            RunUpdate(
                status=RunStatus.FAILED,
                error_code="storage_failed",
                error_message="The answer could not be saved. Try again.",
            ),
        )
    except DatabaseError:
        log.exception("run %s: its failure could not be stored either; handing it on", run.pk)
