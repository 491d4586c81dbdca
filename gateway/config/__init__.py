"""Typed, frozen gateway configuration: the sections (``schema``, ``access``) and their loader.

``loader`` is the only module of the gateway that reads the process environment.
"""

from gateway.config.access import (
    ApiKeyConfig,
    AppConfig,
    AuthConfig,
    ClaimsConfig,
    DevIssuerConfig,
    GroupConfig,
    IssuerConfig,
    TenantConfig,
)
from gateway.config.limits import LimitRuleConfig, LimitsConfig, MaxTokensMode, StoreKind
from gateway.config.loader import (
    ENV_CONFIG_PATH,
    ENV_PREFIX,
    config_path_from_env,
    load_config,
    load_config_file,
    process_environ,
)
from gateway.config.metering import MeteringConfig, PricingConfig, SinkKind
from gateway.config.phi import (
    PhiConfig,
    PhiMode,
    PhiOverrideConfig,
    PhiPolicyConfig,
    VaultKind,
)
from gateway.config.schema import (
    ChatTemplate,
    GatewayConfig,
    LogLevel,
    ModelConfig,
    ModelKind,
    ModelStatus,
    SageMakerDialect,
    SageMakerModelConfig,
    ServerConfig,
    UpstreamConfig,
    UpstreamKind,
)
from gateway.config.secret import Secret

__all__ = [
    "ENV_CONFIG_PATH",
    "ENV_PREFIX",
    "ApiKeyConfig",
    "AppConfig",
    "AuthConfig",
    "ChatTemplate",
    "ClaimsConfig",
    "DevIssuerConfig",
    "GatewayConfig",
    "GroupConfig",
    "IssuerConfig",
    "LimitRuleConfig",
    "LimitsConfig",
    "LogLevel",
    "MaxTokensMode",
    "MeteringConfig",
    "ModelConfig",
    "ModelKind",
    "ModelStatus",
    "PhiConfig",
    "PhiMode",
    "PhiOverrideConfig",
    "PhiPolicyConfig",
    "PricingConfig",
    "SageMakerDialect",
    "SageMakerModelConfig",
    "Secret",
    "ServerConfig",
    "SinkKind",
    "StoreKind",
    "TenantConfig",
    "UpstreamConfig",
    "UpstreamKind",
    "VaultKind",
    "config_path_from_env",
    "load_config",
    "load_config_file",
    "process_environ",
]
