"""Auth: the Cognito user pool (app users) and admin pool, their groups and app clients.

Token choice: clients send **ID tokens**. The gateway reads ``custom:tenantId``, ``custom:appId``
and ``custom:appUserId``; Cognito puts ``custom:`` attributes into ID tokens only, unless a V2
pre-token-generation trigger (Essentials plan) copies them into access tokens. ID tokens carry
``aud`` = the app client id, which the gateway checks (``auth.issuers.<name>.token_use = ["id"]``).

Invariant: no app client may write the tenant, app or app-user attributes (else a user could
re-tenant themselves with ``UpdateUserAttributes``); administrators set them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Acknowledgment,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
    aws_cognito as cognito,
)
from constructs import Construct

from deploy.settings import DeployContext

CUSTOM_ATTRIBUTES = ("tenantId", "appId", "appUserId")
"""Read by the gateway (``auth.claims``); set by administrators only."""
ADMIN_GROUPS = {
    "super_admin": "Admin routes of every tenant",
    "admin": "Admin routes of own tenant",
}


@dataclass(frozen=True, slots=True)
class Pool:
    """A user pool and the app client whose tokens the gateway accepts."""

    pool: cognito.UserPool
    client: cognito.UserPoolClient

    def issuer(self, region: str) -> str:
        """The ``iss`` of this pool's tokens."""
        return f"https://cognito-idp.{region}.amazonaws.com/{self.pool.user_pool_id}"


class AuthStack(Stack):
    """Two user pools: ``users`` (app users, tenant attributes) and ``admins`` (MFA, groups)."""

    def __init__(self, scope: Construct, construct_id: str, *, ctx: DeployContext,
                 **kwargs: object) -> None:  # fmt: skip
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._ctx = ctx
        self.users = self._pool("Users", f"{ctx.prefix}-users", mfa=cognito.Mfa.OPTIONAL)
        self.admins = self._pool("Admins", f"{ctx.prefix}-admins", mfa=cognito.Mfa.REQUIRED)
        for name, description in ADMIN_GROUPS.items():
            cognito.CfnUserPoolGroup(self, f"Group{name.title().replace('_', '')}",
                                     user_pool_id=self.admins.pool.user_pool_id,
                                     group_name=name, description=description)  # fmt: skip
        Validations.of(self.users.pool).acknowledge(Acknowledgment(
            id="AwsSolutions-COG2",
            reason="App users enrol in MFA (TOTP) at will; the apps decide whether to require it. "
            "The admin pool requires MFA.",
        ))  # fmt: skip

    def _pool(self, construct_id: str, name: str, *, mfa: cognito.Mfa) -> Pool:
        pool = cognito.UserPool(
            self, construct_id,
            user_pool_name=name,
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            mfa=mfa,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True,
                require_uppercase=True, require_symbols=True,
                temp_password_validity=Duration.days(3)),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            custom_attributes={
                attr: cognito.StringAttribute(min_len=1, max_len=128, mutable=True)
                for attr in CUSTOM_ATTRIBUTES
            },
            deletion_protection=self._ctx.is_prod,
            removal_policy=RemovalPolicy.RETAIN if self._ctx.is_prod else RemovalPolicy.DESTROY,
        )  # fmt: skip
        client = pool.add_client(
            "AppClient",
            user_pool_client_name=f"{self._ctx.app_name}" if construct_id == "Users" else "admin",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            id_token_validity=Duration.minutes(60),
            access_token_validity=Duration.minutes(60),
            refresh_token_validity=Duration.days(1 if construct_id == "Admins" else 30),
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True, given_name=True,
                                      family_name=True)
            .with_custom_attributes(*CUSTOM_ATTRIBUTES),
            # SECURITY: tenant/app attributes are absent here, so users cannot re-tenant themselves.
            write_attributes=cognito.ClientAttributes().with_standard_attributes(
                email=True, given_name=True, family_name=True),
        )  # fmt: skip
        return Pool(pool, client)
