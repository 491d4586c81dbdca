"""The shared limit store on Redis: one Lua script per admission, one per settlement.

Invariants:
- every decision runs in one script on the server's clock (``TIME``), so workers and replicas
  with skewed clocks agree, and check-then-charge cannot race (Kong PR #8227's bug);
- one round trip per admission: GCRA, token reservation and stream slot of every bucket of the
  request are decided and charged together (``EVALSHA``; the client reloads on ``NOSCRIPT``);
- keys (prefix ``limits.key_prefix``): ``<k>:tat`` (GCRA, expires when back to a full burst),
  ``<k>:d:<day>`` hash ``used``/``reserved``, ``<k>:r:<day>`` sorted set of open reservations
  ``<request id>|<tokens>`` scored by expiry (ms), ``<k>:s`` open streams scored by expiry,
  ``done:<request id>`` settle marker (idempotency). Day keys live two days.
- The scripts build key names from arguments, so the store assumes one Redis node (or a cluster
  with every key of a tenant in one slot); ElastiCache non-cluster mode qualifies.
"""

from __future__ import annotations

from typing import Final, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import AuthenticationError, RedisError

from gateway.limits.rules import Admission
from gateway.limits.store import Refusal, StoreAuthFailed, StoreUnavailable, Verdict

_ADMIT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local prefix, rid = ARGV[1], ARGV[2]
local est, is_stream = tonumber(ARGV[3]), ARGV[4] == '1'
local ttl_ms, n = tonumber(ARGV[5]), tonumber(ARGV[6])
local day = math.floor(now / 86400000000)
local day_left = (day + 1) * 86400000000 - now
local exp_ms = now_ms + ttl_ms
local lim_r, rem_r, reset_r, lim_t, rem_t = -1, 0, 0, -1, 0
local tats = {}
local function refuse(kind, retry)
  return {0, kind, retry, day, lim_r, rem_r, reset_r, lim_t, rem_t, day_left}
end
for i = 0, n - 1 do
  local b = 7 + i * 5
  local key = prefix .. ARGV[b]
  local rpm, burst = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local tpd, maxs = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if rpm > 0 then
    local interval = math.max(1, math.floor(60000000 / rpm))
    local tat = tonumber(redis.call('GET', key .. ':tat') or '0')
    local base = math.max(tat, now)
    local new_tat = base + interval
    local allow_at = new_tat - burst * interval
    if allow_at > now then
      lim_r, rem_r, reset_r = rpm, 0, base - now
      return refuse('requests', allow_at - now)
    end
    local remaining = math.floor((now - allow_at) / interval)
    if lim_r < 0 or remaining < rem_r then
      lim_r, rem_r, reset_r = rpm, remaining, new_tat - now
    end
    tats[#tats + 1] = {key .. ':tat', new_tat}
  end
  if tpd > 0 then
    local h, z = key .. ':d:' .. day, key .. ':r:' .. day
    local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now_ms, 'LIMIT', 0, 256)
    for _, member in ipairs(expired) do
      local tokens = tonumber(string.match(member, '|(%d+)$'))
      redis.call('HINCRBY', h, 'reserved', -tokens)
      redis.call('ZREM', z, member)
    end
    local used = tonumber(redis.call('HGET', h, 'used') or '0')
    local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
    if used + est > tpd then
      lim_t, rem_t = tpd, 0
      return refuse('quota', day_left)
    end
    local left = tpd - used - reserved - est
    if left < 0 then
      lim_t, rem_t = tpd, 0
      return refuse('tokens', 1000000)
    end
    if lim_t < 0 or left < rem_t then lim_t, rem_t = tpd, left end
  end
  if is_stream and maxs > 0 then
    local s = key .. ':s'
    redis.call('ZREMRANGEBYSCORE', s, '-inf', now_ms)
    if redis.call('ZCARD', s) >= maxs then return refuse('streams', 1000000) end
  end
end
for _, pair in ipairs(tats) do
  local keep_ms = math.floor((pair[2] - now) / 1000) + 1000
  redis.call('SET', pair[1], string.format('%.0f', pair[2]), 'PX', keep_ms)
end
for i = 0, n - 1 do
  local b = 7 + i * 5
  local key = prefix .. ARGV[b]
  if tonumber(ARGV[b + 3]) > 0 and est > 0 then
    local h, z = key .. ':d:' .. day, key .. ':r:' .. day
    redis.call('HINCRBY', h, 'reserved', est)
    redis.call('ZADD', z, exp_ms, rid .. '|' .. est)
    redis.call('PEXPIRE', h, 172800000)
    redis.call('PEXPIRE', z, 172800000)
  end
  if is_stream and tonumber(ARGV[b + 4]) > 0 then
    redis.call('ZADD', key .. ':s', exp_ms, rid)
    redis.call('PEXPIRE', key .. ':s', ttl_ms)
  end
end
return {1, '', 0, day, lim_r, rem_r, reset_r, lim_t, rem_t, day_left}
"""

_SETTLE: Final = """
local prefix, rid, est, actual = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local day, ttl_ms, n = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if not redis.call('SET', prefix .. 'done:' .. rid, '1', 'NX', 'PX', ttl_ms * 2) then
  return 0
end
for i = 0, n - 1 do
  local b = 8 + i * 3
  local key = prefix .. ARGV[b]
  if ARGV[b + 1] == '1' then
    local h = key .. ':d:' .. day
    if redis.call('ZREM', key .. ':r:' .. day, rid .. '|' .. est) == 1 then
      redis.call('HINCRBY', h, 'reserved', -tonumber(est))
    end
    redis.call('HINCRBY', h, 'used', actual)
    redis.call('PEXPIRE', h, 172800000)
  end
  if ARGV[b + 2] == '1' then redis.call('ZREM', key .. ':s', rid) end
end
return 1
"""

_ADD_USAGE: Final = """
local prefix, n = ARGV[1], tonumber(ARGV[2])
for i = 0, n - 1 do
  local h = prefix .. ARGV[3 + i * 3] .. ':d:' .. ARGV[4 + i * 3]
  redis.call('HINCRBY', h, 'used', tonumber(ARGV[5 + i * 3]))
  redis.call('PEXPIRE', h, 172800000)
end
return n
"""

_USAGE: Final = """
local t = redis.call('TIME')
local day = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 86400000000)
local h = ARGV[1] .. ':d:' .. day
return {tonumber(redis.call('HGET', h, 'used') or '0'),
        tonumber(redis.call('HGET', h, 'reserved') or '0')}
"""


class RedisStore:
    """``LimitStore`` on Redis (``redis.asyncio``); callers bound each call's wait."""

    def __init__(
        self, url: str, *, key_prefix: str, reservation_ttl_s: float, password: str | None = None
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            # AUTH at connection; the config refuses a URL that carries a password as well (the
            # URL's would win).
            password=password,
            # One immediate retry on a broken connection replaces a pooled connection that died
            # with a restarted Redis; a Redis that is down fails again at once (refused), and
            # the caller's deadline bounds the whole call anyway.
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=1.0,
            health_check_interval=0,
            # None: no CLIENT SETINFO, whose version lookup reads package metadata from disk
            # (a blocking call) on every new connection.
            driver_info=None,
        )
        self._prefix = key_prefix
        self._ttl_ms = int(reservation_ttl_s * 1000)
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)
        self._usage = self._redis.register_script(_USAGE)
        self._add_usage = self._redis.register_script(_ADD_USAGE)

    @staticmethod
    async def _call(script: AsyncScript, args: list[str | int]) -> object:
        try:
            return await script(args=args)
        except AuthenticationError as exc:
            raise StoreAuthFailed(str(exc)) from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def start(self) -> None:
        """Nothing to do: scripts load on first use (``NOSCRIPT`` -> ``SCRIPT LOAD``)."""

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def admit(self, admission: Admission) -> Verdict:
        """See ``LimitStore.admit``."""
        args: list[str | int] = [
            self._prefix,
            admission.request_id,
            admission.tokens,
            1 if admission.is_stream else 0,
            self._ttl_ms,
            len(admission.buckets),
        ]
        for b in admission.buckets:
            args += [b.key, b.requests_per_minute or 0, b.burst, b.tokens_per_day or 0]
            args.append(b.max_streams or 0)
        reply = cast("list[int | bytes]", await self._call(self._admit, args))
        allowed, refusal, retry, day, lim_r, rem_r, reset_r, lim_t, rem_t, day_left = reply
        return Verdict(
            allowed == 1,
            cast("Refusal", refusal.decode()) if isinstance(refusal, bytes) and refusal else None,
            int(retry),
            int(day),
            limit_requests=int(lim_r) if int(lim_r) >= 0 else None,
            remaining_requests=int(rem_r),
            reset_requests_us=int(reset_r),
            limit_tokens=int(lim_t) if int(lim_t) >= 0 else None,
            remaining_tokens=int(rem_t),
            reset_tokens_us=int(day_left) if int(lim_t) >= 0 else 0,
        )

    async def settle(self, admission: Admission, verdict: Verdict, actual_tokens: int) -> None:
        """See ``LimitStore.settle``."""
        args: list[str | int] = [
            self._prefix,
            admission.request_id,
            admission.tokens,
            actual_tokens,
            verdict.day,
            self._ttl_ms,
            len(admission.buckets),
        ]
        for b in admission.buckets:
            args += [b.key, 1 if b.tokens_per_day else 0]
            args.append(1 if admission.is_stream and b.max_streams else 0)
        await self._call(self._settle, args)

    async def add_usage(self, entries: list[tuple[str, int, int]]) -> None:
        """See ``LimitStore.add_usage``."""
        args: list[str | int] = [self._prefix, len(entries)]
        for key, day, tokens in entries:
            args += [key, day, tokens]
        await self._call(self._add_usage, args)

    async def usage(self, key: str) -> tuple[int, int]:
        """See ``LimitStore.usage``."""
        used, reserved = cast("list[int]", await self._call(self._usage, [self._prefix + key]))
        return int(used), int(reserved)
