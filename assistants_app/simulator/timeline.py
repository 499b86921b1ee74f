"""The one timed lifecycle of a simulated answer, shared by the three protocols.

An answer is queued for the first fifth of its latency, then in progress; from `latency` on
its tokens are written one by one at `token_rate` a second, and it is finished with the last
one. A poller reads where it is now (`tokens_written`, `finished`); a streamer waits for each
moment (`wait_until`). A stop freezes it: nothing more is written. The Assistants API starts a
new round after tool outputs (`begin_again`). What each protocol calls these states, and the
faults that bend them, stay in its own module.
"""

import asyncio
import time
from dataclasses import dataclass, field

QUEUED_SHARE = 0.2  # of the latency, spent queued


@dataclass
class TimedAnswer:
    tokens: list[str]
    latency: float  # seconds from the start to the first token
    token_rate: float  # tokens a second, once writing starts
    started: float = field(default_factory=time.monotonic)
    stopped_at: float | None = None  # time.monotonic() of a stop

    @property
    def elapsed(self) -> float:
        """Seconds since the start; a stop freezes it."""
        end = time.monotonic() if self.stopped_at is None else self.stopped_at
        return end - self.started

    @property
    def queued_for(self) -> float:
        return self.latency * QUEUED_SHARE

    @property
    def queued(self) -> bool:
        return self.elapsed < self.queued_for

    def token_due(self, index: int) -> float:
        """Seconds after the start when token `index` is written."""
        return self.latency + index / self.token_rate

    @property
    def finished_after(self) -> float:
        """Seconds after the start when the last token is written (the answer is whole)."""
        return self.token_due(len(self.tokens))

    @property
    def finished(self) -> bool:
        return self.elapsed >= self.finished_after

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def tokens_written(self) -> int:
        elapsed = self.elapsed
        return sum(1 for index in range(len(self.tokens)) if self.token_due(index) <= elapsed)

    def text_written(self) -> str:
        return "".join(self.tokens[: self.tokens_written()])

    def writing_record(self, started_wall: float) -> dict:
        """For a benchmark timing each token to the page: when each token written so far was
        written (`token_times`, time.time() given the start as `started_wall`) and the answer's
        length in characters after it (`token_ends`). A token without text is left out: no
        page can wait for it."""
        times, ends, length = [], [], 0
        for index, token in enumerate(self.tokens[: self.tokens_written()]):
            if not token:
                continue
            length += len(token)
            times.append(round(started_wall + self.token_due(index), 4))  # 0.1 ms is enough
            ends.append(length)
        return {"token_times": times, "token_ends": ends}

    async def wait_until(self, moment: float) -> None:
        """Sleep until `moment` seconds after the start (at once if it has passed)."""
        await asyncio.sleep(max(0.0, moment - (time.monotonic() - self.started)))

    def stop(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()

    def begin_again(self, tokens: list[str]) -> None:
        """A new round from now (queued, in progress, written) with these tokens."""
        self.tokens, self.started = tokens, time.monotonic()
