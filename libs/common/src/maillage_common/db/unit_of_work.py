"""The use case owns the transaction: state changes and their events commit together."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from google.protobuf.message import Message
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maillage_common.db.messaging import OUTBOX
from maillage_common.events.catalogue import topic_of
from maillage_common.observability.tracing import current_traceparent


class EventTooLargeError(ValueError):
    """The event would exceed the broker's message size: refused before it can wedge the outbox."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outbox row, prepared (and size-checked) before the statement that writes it."""

    event_id: uuid.UUID
    topic: str
    event_key: str
    event_type: str
    payload: bytes
    traceparent: str | None


def outbox_row(message: Message, *, subject: str, max_event_bytes: int) -> OutboxRow:
    """The row that publishes `message` keyed by its aggregate id `subject`, for `record` and
    for a hot path that writes its state and its event in one hand-written statement."""
    payload = message.SerializeToString(deterministic=True)
    if len(payload) > max_event_bytes:
        raise EventTooLargeError(
            f"{message.DESCRIPTOR.full_name} is {len(payload)} bytes;"
            f" the limit is {max_event_bytes}"
        )
    return OutboxRow(
        event_id=uuid.uuid4(),
        topic=topic_of(type(message)),
        event_key=subject,
        event_type=message.DESCRIPTOR.full_name,
        payload=payload,
        traceparent=current_traceparent(),
    )


class UnitOfWork:
    """One transaction: repositories work on `session`; `record` adds events to the outbox.

    Repositories never commit; the use case calls `commit()`. Leaving the block without
    committing rolls everything back, events included.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, max_event_bytes: int = 1_000_000
    ) -> None:
        self._sessions = sessions
        self._max_event_bytes = max_event_bytes
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        await self._session.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            await session.close()

    async def record(self, message: Message, *, subject: str) -> uuid.UUID:
        """Queue `message` for publication, keyed by its aggregate id `subject`."""
        row = outbox_row(message, subject=subject, max_event_bytes=self._max_event_bytes)
        await self.session.execute(insert(OUTBOX).values(**dataclasses.asdict(row)))
        return row.event_id

    async def commit(self) -> None:
        await self.session.commit()
