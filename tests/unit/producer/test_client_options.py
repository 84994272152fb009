"""What both clients refuse before anything is sent (no broker is reached here)."""

import asyncio

import pytest

from producer import AsyncClient, Client, ConfigError
from producer.errors import WireError

NO_BROKER = "redis://127.0.0.1:1/0"


def test_a_map_window_below_one_is_refused_by_both_clients():
    with Client(NO_BROKER) as client, pytest.raises(ConfigError, match="window must be at least 1"):
        next(client.map("m", [{}], window=0))

    async def first() -> None:
        async with AsyncClient(NO_BROKER) as client:
            await client.map("m", [{}], window=0).__anext__()

    with pytest.raises(ConfigError, match="window must be at least 1"):
        asyncio.run(first())


@pytest.mark.parametrize("name", ["add:1", "../etc", "", "a b", "-x"])
def test_a_model_name_the_worker_would_refuse_is_refused_before_sending(name):
    with Client(NO_BROKER) as client, pytest.raises(WireError) as info:
        client.submit(name, {})
    assert info.value.code == 100000 and "is not a valid name" in info.value.message
    if ":" in name:
        assert "a version goes in version=N" in info.value.message


@pytest.mark.parametrize("value", [1, "yes", None])
def test_split_rows_must_be_true_or_false_on_both_clients(value):
    with Client(NO_BROKER) as client, pytest.raises(ConfigError, match="split_rows .* must be True or False"):
        client.submit("m", {}, split_rows=value)

    async def submit() -> None:
        async with AsyncClient(NO_BROKER) as client:
            await client.submit("m", {}, split_rows=value)

    with pytest.raises(ConfigError, match="split_rows .* must be True or False"):
        asyncio.run(submit())
