"""The PostgreSQL pool and the one place where database failures become our own.

One bounded pool per process (`Database`), opened and closed from a cleanup context. A busy
pool makes a request wait up to `BOOKING_DATABASE_ACQUIRE_TIMEOUT_SECONDS` for a connection
instead of failing at once; only after that, or when PostgreSQL cannot be reached, does a
request end in `StoreUnavailable` (a 503 with Retry-After). Every connection carries a
statement timeout, so a hung query never hangs a request forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import asyncpg.pool

log = logging.getLogger(__name__)

T = TypeVar("T")
if TYPE_CHECKING:  # the stubs make it generic; the runtime class is not subscriptable
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy
# How often a transaction that lost a deadlock or serialization race is run again.
TX_ATTEMPTS = 5
CLOSE_TIMEOUT_S = 10.0

# What "the database is not there" looks like to asyncpg: a refused or dropped connection,
# a server shutting down or starting up, a statement or lock timeout, a pool that stayed
# busy.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InternalClientError,
)


class StoreUnavailable(Exception):
    """The database could not be reached, was too busy, or gave up a statement: views show
    a friendly 503 with Retry-After."""


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn a database failure into `StoreUnavailable` (the boundary)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc


class Database:
    """The pool, created on `open` inside the running loop."""

    def __init__(self, url: str, *, size: int, acquire_timeout: float,
                 statement_timeout: float) -> None:
        self.url = url
        self.size = size
        self.acquire_timeout = acquire_timeout
        self.statement_timeout = statement_timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def open(self) -> None:
        """Create the pool; no connection is made until one is needed, so the app starts
        (and answers 503) while PostgreSQL is down."""
        ms = str(int(self.statement_timeout * 1000))
        self._pool = asyncpg.create_pool(
            self.url, min_size=0, max_size=self.size,
            # Client side as well: a server that stops answering (killed, network gone).
            command_timeout=self.statement_timeout + 5,
            max_inactive_connection_lifetime=300,
            server_settings={"statement_timeout": ms, "lock_timeout": ms,
                             "idle_in_transaction_session_timeout": str(int(ms) * 4),
                             "application_name": "booking-backend"},
        )
        with guard():
            await self._pool

    async def close(self) -> None:
        """Close the pool; a connection that does not close in time (a server gone away
        mid-statement) is cut, so shutting down never hangs."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except UNAVAILABLE as exc:
                log.warning("database pool closed uncleanly: %s", exc)
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise StoreUnavailable("the database pool is not open")
        return self._pool

    def free_share(self) -> float:
        """Share of the pool's connections free now, 0 to 1 (for the capacity hint); 0
        while the pool is closed. Requests waiting for a connection are not seen: a full
        pool says 0 however many wait."""
        if self._pool is None:
            return 0.0
        busy = self._pool.get_size() - self._pool.get_idle_size()
        return max(0.0, 1 - busy / self.size)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection, waited for up to the acquire timeout."""
        with guard():
            async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
                yield conn

    async def transaction(self, work: Callable[[Connection], Awaitable[T]], *,
                          snapshot: bool = False) -> T:
        """Run `work` in one transaction (READ COMMITTED, row locks for what it changes).

        `snapshot=True` reads instead from one snapshot (REPEATABLE READ, read only), so
        figures read by several statements agree with each other.

        Race: two transactions that lock the same rows in different orders (a cancellation
        handing a pair to the waiting list while holds take slots) can deadlock; PostgreSQL
        aborts one, which runs again here from the start, as nothing of it was committed."""
        for attempt in range(1, TX_ATTEMPTS + 1):
            try:
                async with self.connection() as conn, conn.transaction(
                        isolation="repeatable_read" if snapshot else "read_committed",
                        readonly=snapshot):
                    return await work(conn)
            except asyncpg.exceptions.TransactionRollbackError as exc:
                if attempt == TX_ATTEMPTS:
                    raise StoreUnavailable(f"transaction kept failing: {exc}") from exc
                log.info("transaction rolled back (%s), running it again", type(exc).__name__)
        raise AssertionError("unreachable")

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: object) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: object) -> str:
        async with self.connection() as conn:
            return await conn.execute(query, *args)

    async def ping(self) -> bool:
        return bool(await self.fetchval("SELECT 1") == 1)
