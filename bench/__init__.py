"""Bench v0: the gateway vs a direct connection vs a bare aiohttp pass-through (bench/README.md)."""
