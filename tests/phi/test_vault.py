"""One suite over both vaults (in-memory and a real Redis server): round trip, encryption at rest,
tenant and conversation binding, issue-once, TTL, and failing closed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.errors import RedactionFailed
from gateway.phi.redis_vault import RedisVault
from gateway.phi.vault import MemoryVault, SealedVault, Sealer
from tests.redis_server import RedisServer, free_port

KEY = bytes(range(32))
NAME = "[PHI_NAME_1]"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def vault(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[SealedVault]:
    if request.param == "memory":
        yield MemoryVault(Sealer(KEY))
        return
    prefix = f"t:{os.urandom(4).hex()}:"
    store = RedisVault(redis_url, Sealer(KEY), key_prefix=prefix, timeout_s=2.0)
    await store.start()
    yield store
    await store.aclose()


async def test_round_trip_per_tenant_and_conversation(vault: SealedVault) -> None:
    assert await vault.load("t1", "c1") == {}
    await vault.save("t1", "c1", {NAME: "Jane Doe", "[PHI_SSN_1]": "123-45-6789"}, 60)
    await vault.save("t1", "c1", {"[PHI_NAME_2]": "John Roe"}, 60)
    assert await vault.load("t1", "c1") == {
        NAME: "Jane Doe",
        "[PHI_SSN_1]": "123-45-6789",
        "[PHI_NAME_2]": "John Roe",
    }
    assert await vault.load("t2", "c1") == {}
    assert await vault.load("t1", "c2") == {}


async def test_a_placeholder_is_issued_once(vault: SealedVault) -> None:
    await vault.save("t", "c", {NAME: "Jane Doe"}, 60)
    await vault.save("t", "c", {NAME: "Jane Doe"}, 60)  # the same value again: fine
    with pytest.raises(RedactionFailed, match="concurrently"):
        await vault.save("t", "c", {NAME: "John Roe"}, 60)
    assert await vault.load("t", "c") == {NAME: "Jane Doe"}


async def test_a_wrong_key_fails_closed(vault: SealedVault) -> None:
    await vault.save("t", "c", {NAME: "Jane Doe"}, 60)
    vault._sealer = Sealer(bytes(32))
    with pytest.raises(RedactionFailed, match="authentication"):
        await vault.load("t", "c")


async def test_concurrent_saves_of_one_conversation_never_mix_values(vault: SealedVault) -> None:
    results = await asyncio.gather(
        *(vault.save("t", "race", {NAME: f"Person {i}"}, 60) for i in range(8)),
        return_exceptions=True,
    )
    won = [r for r in results if r is None]
    assert len(won) == 1
    assert all(isinstance(r, RedactionFailed) for r in results if r is not None)
    assert (await vault.load("t", "race"))[NAME] == f"Person {results.index(None)}"


def test_sealing_binds_tenant_conversation_and_placeholder() -> None:
    sealer = Sealer(KEY)
    sealed = sealer.seal("t1", "c1", NAME, "Jane Doe")
    assert b"Jane" not in sealed
    assert sealer.open("t1", "c1", NAME, sealed) == "Jane Doe"
    for tenant, conversation, placeholder in (
        ("t2", "c1", NAME),
        ("t1", "c2", NAME),
        ("t1", "c1", "[PHI_NAME_2]"),
        ("t1c", "1", NAME),  # no ambiguity between field boundaries
    ):
        with pytest.raises(RedactionFailed):
            sealer.open(tenant, conversation, placeholder, sealed)
    assert sealer.seal("t1", "c1", NAME, "Jane Doe")[:12] != sealed[:12]  # fresh nonces


async def test_memory_entries_expire_and_the_store_stays_bounded() -> None:
    clock = Clock()
    vault = MemoryVault(Sealer(KEY), max_conversations=3, clock=clock)
    await vault.save("t", "c", {NAME: "Jane Doe"}, 60)
    clock.now += 59
    await vault.save("t", "c", {"[PHI_NAME_2]": "John Roe"}, 60)  # refreshes the TTL
    clock.now += 59
    assert len(await vault.load("t", "c")) == 2
    await vault.save("t", "c", {}, 60)  # a request that issued nothing new refreshes it too
    clock.now += 59
    assert len(await vault.load("t", "c")) == 2
    clock.now += 2
    assert await vault.load("t", "c") == {}
    await vault.save("t", "gone", {}, 60)  # nothing to refresh: nothing stored
    assert len(vault) == 0
    for i in range(5):
        await vault.save("t", f"c{i}", {NAME: "x"}, 60)
    assert len(vault) == 3
    assert await vault.load("t", "c0") == {}
    assert await vault.load("t", "c4") == {NAME: "x"}


async def test_redis_holds_only_sealed_values_with_a_ttl(redis_url: str) -> None:
    prefix = f"t:{os.urandom(4).hex()}:"
    vault = RedisVault(redis_url, Sealer(KEY), key_prefix=prefix, timeout_s=2.0)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await vault.save("tenant", "conv", {NAME: "Jane Doe"}, 90)
        key = f"{prefix}6:tenant:conv"
        stored = await raw.hgetall(key)
        assert list(stored) == [NAME.encode()]
        assert b"Jane" not in stored[NAME.encode()]
        assert 85_000 < await raw.pttl(key) <= 90_000
        await vault.save("tenant", "conv", {}, 300)  # nothing new: the TTL is refreshed anyway
        assert 295_000 < await raw.pttl(key) <= 300_000
        await vault.save("tenant", "never", {}, 300)
        assert await raw.exists(f"{prefix}6:tenant:never") == 0
        # A sealed value copied into another tenant's conversation does not open there.
        await raw.hset(f"{prefix}5:other:conv", NAME, stored[NAME.encode()])
        with pytest.raises(RedactionFailed):
            await vault.load("other", "conv")
    finally:
        await vault.aclose()
        await raw.aclose()


async def test_unreachable_redis_fails_closed() -> None:
    vault = RedisVault(
        f"redis://127.0.0.1:{free_port()}/0", Sealer(KEY), key_prefix="x:", timeout_s=0.5
    )
    try:
        with pytest.raises(RedactionFailed, match="unavailable"):
            await vault.load("t", "c")
        with pytest.raises(RedactionFailed, match="unavailable"):
            await vault.save("t", "c", {NAME: "Jane Doe"}, 60)
    finally:
        await vault.aclose()


async def test_redis_password_authenticates_and_a_wrong_one_fails_closed() -> None:
    password = os.urandom(12).hex()
    server = RedisServer(password=password).start()
    try:
        vault = RedisVault(
            server.url, Sealer(KEY), key_prefix="p:", timeout_s=2.0, password=password
        )
        wrong = RedisVault(
            server.url, Sealer(KEY), key_prefix="p:", timeout_s=2.0, password=password[::-1]
        )
        try:
            await vault.save("t", "c", {NAME: "Jane Doe"}, 60)
            assert await vault.load("t", "c") == {NAME: "Jane Doe"}
            with pytest.raises(RedactionFailed, match="unavailable"):
                await wrong.load("t", "c")
        finally:
            await vault.aclose()
            await wrong.aclose()
    finally:
        server.close()
