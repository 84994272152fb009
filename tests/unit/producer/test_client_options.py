"""What both clients refuse before anything is sent (no broker is reached here)."""

import asyncio

import pytest

from producer import AsyncClient, Client, ConfigError

NO_BROKER = "redis://127.0.0.1:1/0"


def test_a_map_window_below_one_is_refused_by_both_clients():
    with Client(NO_BROKER) as client, pytest.raises(ConfigError, match="window must be at least 1"):
        next(client.map("m", [{}], window=0))

    async def first() -> None:
        async with AsyncClient(NO_BROKER) as client:
            await client.map("m", [{}], window=0).__anext__()

    with pytest.raises(ConfigError, match="window must be at least 1"):
        asyncio.run(first())
