"""What engines whose runs are generated in this process share (Chat Completions, and
Responses on a provider without background mode): the text streamed so far, kept so that
`cancel` (after the driver stopped the generation) and a stream that breaks midway keep it."""

from ..exceptions import ProviderError
from ..models import Run, RunStatus
from .base import Engine, RemoteMessage, RunUpdate, Usage

BROKEN = "The connection to the provider broke in the middle of its answer."
UNFINISHED = "The answer stopped before it was finished."


class LocalGeneration(Engine):
    def __init__(self, provider: dict):
        super().__init__(provider)
        self._streamed: dict[int, list[str]] = {}  # run id -> the text pieces received so far

    def _start_pieces(self, run: Run) -> list[str]:
        pieces = self._streamed[run.pk] = []
        return pieces

    async def cancel(self, run: Run) -> RunUpdate:
        """What was said before the driver stopped the generation."""
        return RunUpdate(status=RunStatus.CANCELLED, messages=self._so_far(run))

    def _broken(self, run: Run, code: str, message: str, usage: Usage | None) -> RunUpdate:
        """A failed run that keeps what had arrived (stored as a partial answer)."""
        return RunUpdate(
            status=RunStatus.FAILED,
            messages=self._so_far(run),
            usage=usage,
            error_code=code,
            error_message=message,
        )

    def _failed_midway(self, run: Run, error: ProviderError, usage: Usage | None) -> RunUpdate:
        """A generation whose stream failed. It is not replayed behind the user's back (it is
        slow and not idempotent): only a rate limit before any text is raised, for the driver
        to wait out; otherwise the run fails keeping what had arrived."""
        said = bool(self._streamed.get(run.pk))
        if error.code == "rate_limited" and not said:
            raise error
        if said and error.code in ("connection_error", "timeout"):
            return self._broken(run, "stream_broken", BROKEN, usage)
        return self._broken(run, error.code, error.message, usage)

    def _so_far(self, run: Run) -> list[RemoteMessage]:
        text = "".join(self._streamed.get(run.pk, [])).rstrip()
        return [RemoteMessage(run.remote_id, text)] if text.strip() else []
