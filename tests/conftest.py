from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support import LiveServer, live_server, make_settings


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(tmp_path)) as live:
        await live.add_project("demo")
        await live.add_project("other")
        yield live
