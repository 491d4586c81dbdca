"""Composition root: builds the aiohttp application from a config; no logic of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from gateway import lifecycle
from gateway.auth.authenticator import Authenticator
from gateway.auth.jwt import MAX_TOKEN_BYTES
from gateway.auth.policy import AccessPolicy
from gateway.config import GatewayConfig
from gateway.keys import (
    AUTHENTICATOR,
    CONFIG,
    IN_FLIGHT,
    LEDGER,
    LIMITER,
    METRICS,
    PIPELINE,
    POLICY,
    SNAPSHOTS,
)
from gateway.limits.limiter import Limiter, open_store
from gateway.metering.ledger import open_ledger
from gateway.middleware import build_middlewares, install_response_hooks
from gateway.phi.vault import Vault
from gateway.pipeline import Pipeline
from gateway.privacy import Privacy
from gateway.routes import PUBLIC_PATHS, add_routes
from gateway.tasks import InFlight
from gateway.telemetry import Metrics, SnapshotDir
from gateway.upstreams.registry import UpstreamRegistry


@dataclass(kw_only=True)
class Services:
    """Runtime collaborators that are not configuration (tests and the process model set them)."""

    metrics: Metrics = field(default_factory=Metrics)
    snapshots: SnapshotDir | None = None
    """Set when several workers share a port, so /metrics can merge them."""
    vault: Vault | None = None
    """The PHI vault; default: the one ``[phi]`` configures (tests inject failing ones)."""


def create_app(config: GatewayConfig, services: Services | None = None) -> web.Application:
    """The gateway application for one worker process."""
    services = services or Services()
    authenticator = Authenticator(config.auth, config.api_keys)
    policy = AccessPolicy(config)
    app = web.Application(
        middlewares=build_middlewares(
            config, services.metrics, authenticator, policy, PUBLIC_PATHS
        ),
        client_max_size=config.server.max_body_bytes,
        # Room for a bearer token at twice the verifier's cap, so an oversized token gets the
        # gateway's own 401 rather than the HTTP parser's plain-text 400.
        handler_args={"max_field_size": 2 * MAX_TOKEN_BYTES},
    )
    registry = UpstreamRegistry(config)
    limiter = Limiter(config, open_store(config, services.metrics))
    ledger = open_ledger(config.metering, services.metrics)
    privacy = Privacy(config, services.vault)
    app[CONFIG] = config
    app[METRICS] = services.metrics
    app[IN_FLIGHT] = InFlight()
    app[AUTHENTICATOR] = authenticator
    app[POLICY] = policy
    app[LIMITER] = limiter
    # Without any limit the pipeline skips admission and the limiter's settle hook.
    app[PIPELINE] = Pipeline(
        registry,
        policy,
        services.metrics,
        limiter if limiter.rules.enabled else None,
        ledger=ledger,
        privacy=privacy,
    )
    if ledger is not None:
        app[LEDGER] = ledger
    if services.snapshots is not None:
        app[SNAPSHOTS] = services.snapshots
    install_response_hooks(app, config)
    add_routes(app)
    app.cleanup_ctx.append(lifecycle.service(registry))
    app.cleanup_ctx.append(lifecycle.service(authenticator))
    app.cleanup_ctx.append(lifecycle.limit_store(limiter))
    if ledger is not None:
        app.cleanup_ctx.append(lifecycle.usage_ledger(ledger, config.metering.drain_timeout_s))
    app.cleanup_ctx.append(lifecycle.service(privacy))
    app.cleanup_ctx.append(lifecycle.metrics_snapshots)
    app.on_shutdown.append(lifecycle.drain)
    return app
