"""Storage behind one interface (`Store`), chosen by database URL."""

from __future__ import annotations

from agent_portal.storage.store import Store


async def open_store(url: str) -> Store:
    """`sqlite+aiosqlite:///path` (default) or `postgresql+asyncpg://...`; migrations run on open."""
    if url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        from agent_portal.storage.sql import SqlStore

        return await SqlStore.open(url)
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


__all__ = ["Store", "open_store"]
