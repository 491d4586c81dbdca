from __future__ import annotations

import asyncio

from gateway.watchdog import Watchdog


async def test_fires_once_after_an_armed_deadline() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    dog = Watchdog(loop, fired.append)
    dog.arm(loop.time() + 0.02)
    await asyncio.sleep(0.06)
    assert len(fired) == 1
    dog.close()


async def test_disarm_prevents_firing() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    dog = Watchdog(loop, fired.append)
    dog.arm(loop.time() + 0.02)
    dog.disarm()
    await asyncio.sleep(0.05)
    assert fired == []
    dog.close()


async def test_rearming_later_postpones_without_new_timers() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    dog = Watchdog(loop, fired.append)
    start = loop.time()
    for _ in range(4):  # activity every 10 ms keeps a 30 ms deadline from passing
        dog.arm(loop.time() + 0.03)
        await asyncio.sleep(0.01)
    assert fired == []
    await asyncio.sleep(0.05)
    assert len(fired) == 1
    assert fired[0] - start >= 0.06
    dog.close()


async def test_earlier_deadline_reschedules() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    dog = Watchdog(loop, fired.append)
    dog.arm(loop.time() + 10)
    dog.arm(loop.time() + 0.01)
    await asyncio.sleep(0.04)
    assert len(fired) == 1
    dog.close()


async def test_close_stops_for_good() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    dog = Watchdog(loop, fired.append)
    dog.arm(loop.time() + 0.01)
    dog.close()
    await asyncio.sleep(0.03)
    assert fired == []
