"""Every typed application and request key, declared once."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.authenticator import Authenticator
from gateway.auth.policy import AccessPolicy
from gateway.config import GatewayConfig
from gateway.context import RequestContext
from gateway.limits.limiter import Limiter
from gateway.metering.ledger import Ledger
from gateway.pipeline import Pipeline
from gateway.tasks import InFlight
from gateway.telemetry import Metrics, SnapshotDir

CONFIG = web.AppKey("config", GatewayConfig)
PIPELINE = web.AppKey("pipeline", Pipeline)
METRICS = web.AppKey("metrics", Metrics)
SNAPSHOTS = web.AppKey("snapshots", SnapshotDir)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
POLICY = web.AppKey("policy", AccessPolicy)
LIMITER = web.AppKey("limiter", Limiter)
LEDGER = web.AppKey("ledger", Ledger)

REQUEST_CONTEXT = web.RequestKey("request_context", RequestContext)
