"""Errors raised by the domain: views and consumers turn them into responses in one place each."""


class ClientError(Exception):
    """A request that cannot be done: `code` is stable, `message` is worded for people."""

    status = 400

    def __init__(self, code: str, message: str = ""):
        super().__init__(message or code)
        self.code = code
        self.message = message or code


class InvalidMessage(ClientError):
    status = 400


class InvalidInput(ClientError):
    status = 400


class FileRefused(InvalidInput):
    """A file we do not take (files.py); the message says why, in a sentence."""


class RunActive(ClientError):
    status = 409


class NothingToRetry(ClientError):
    status = 409


class NotAllowed(ClientError):
    status = 403


class NothingToCancel(ClientError):
    status = 409


class CancelFailed(ClientError):
    status = 502


class DatabaseBusy(ClientError):
    """The database stayed locked by other writers for too long (SQLite); nothing was stored."""

    status = 503


class NotFound(Exception):
    """What was asked for does not exist or is not the user's: the same answer either way, so
    nobody learns which. Views answer 404 and the socket closes with 4404."""


class SignedOut(Exception):
    """Whoever opened a long-lived connection (a websocket) is no longer signed in: they
    logged out, changed their password or were deactivated. The socket closes with 4401."""


class UnknownTool(Exception):
    """A run asked for a tool the assistant does not have; the run fails with this reason."""


class RateLimited(ClientError):
    """A fair-use limit is reached; `retry_after` says in how many seconds it lifts, if known."""

    status = 429

    def __init__(self, code: str, message: str = "", retry_after: int | None = None):
        super().__init__(code, message)
        self.retry_after = retry_after


class ProviderError(Exception):
    """A provider call failed. Engines raise it; the run driver decides whether to retry.

    `retryable` is true for rate limits, server errors, timeouts and dropped connections;
    `retry_after` is the provider's hint in seconds, when it gave one.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
