"""Data: the Valkey cache (limits, PHI vault), the PostgreSQL ledger, secrets and the vault key.

Invariants: nothing here is reachable from outside the VPC (isolated subnets, security groups that
admit only the gateway tasks); everything at rest is encrypted with this stack's
KMS key, except the PHI vault's key material, encrypted with the PHI vault key of its own; the
cache requires TLS and an auth token; secrets live in Secrets Manager.
"""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
    aws_ec2 as ec2,
    aws_ecs as ecs,
    aws_elasticache as elasticache,
    aws_kms as kms,
    aws_rds as rds,
    aws_secretsmanager as secretsmanager,
)
from constructs import Construct

from deploy.settings import CACHE_PORT, DATABASE_PORT, LEDGER_DATABASE, LEDGER_USER, DeployContext
from deploy.stacks.network import NetworkStack


class DataStack(Stack):
    """Cache, database, the LiteLLM key and the PHI vault key."""

    def __init__(self, scope: Construct, construct_id: str, *, ctx: DeployContext,
                 network: NetworkStack, **kwargs: object) -> None:  # fmt: skip
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._ctx = ctx
        removal = RemovalPolicy.RETAIN if ctx.is_prod else RemovalPolicy.DESTROY
        self.key = kms.Key(self, "DataKey", enable_key_rotation=True, removal_policy=removal,
                           alias=f"{ctx.prefix}/data", description="Data at rest")  # fmt: skip
        self.vault_key = kms.Key(
            self, "PhiVaultKey", enable_key_rotation=True, removal_policy=removal,
            alias=f"{ctx.prefix}/phi-vault", description="PHI vault key material at rest",
        )  # fmt: skip
        self.litellm_key = self._secret(
            "LiteLLMMasterKey", "LiteLLM master key (gateway -> LiteLLM)"
        )
        self.cache_token = self._secret("CacheAuthToken", "Valkey AUTH token")
        self.vault_secret = self._secret(
            "PhiVaultKeyMaterial", "PHI vault key material (the gateway derives its AES key)",
            key=self.vault_key,
            rotation="The PHI vault's key material, read at task start: a new value makes the "
            "vault entries sealed under the old one unreadable, so it is replaced by hand with "
            "the runbook (deploy/README.md), never on a schedule.",
        )  # fmt: skip
        """48 random letters and digits (``phi.vault_key``): replacing it makes every sealed vault
        entry unreadable, so it is never rotated automatically (deploy/README.md)."""
        vpc = network.vpc
        self.cache_sg = ec2.SecurityGroup(self, "CacheSg", vpc=vpc, allow_all_outbound=False,
                                          description="Valkey: gateway tasks only")  # fmt: skip
        self.database_sg = ec2.SecurityGroup(self, "DatabaseSg", vpc=vpc, allow_all_outbound=False,
                                             description="Ledger: gateway tasks only")  # fmt: skip
        gateway = network.gateway_tasks_sg
        self.cache_sg.add_ingress_rule(gateway, ec2.Port.tcp(CACHE_PORT), "gateway tasks")
        self.database_sg.add_ingress_rule(gateway, ec2.Port.tcp(DATABASE_PORT), "gateway tasks")
        self.cache = self._cache(vpc)
        self.database = self._database(vpc, removal)
        secret = self.database.secret
        assert secret is not None  # noqa: S101 (generated credentials always attach a secret)
        self.ledger_secret: secretsmanager.ISecret = secret
        """The cluster's generated credentials (JSON: ``username``, ``password``, ``host``...)."""

    def secret_for(
        self,
        task: ecs.TaskDefinition,
        secret: secretsmanager.ISecret,
        field: str | None = None,
        *,
        key: kms.IKey | None = None,
    ) -> ecs.Secret:
        """``secret`` (or its JSON ``field``) as a container secret of ``task`` (in another stack);
        ``key`` is the KMS key that encrypts it (default: the data key).

        The secret is imported by ARN so its read grant and the key's decrypt grant both land in
        the execution role's policy; granting through the secret itself would edit this stack's
        key policy with the other stack's role: a dependency cycle.
        """
        scope = Stack.of(task)
        imported = secretsmanager.Secret.from_secret_complete_arn(
            scope, f"{secret.node.id}Imported{field or ''}", secret.secret_arn
        )
        (key or self.key).grant_decrypt(task.obtain_execution_role())
        return ecs.Secret.from_secrets_manager(imported, field)

    def _secret(
        self,
        construct_id: str,
        description: str,
        *,
        key: kms.IKey | None = None,
        rotation: str = (
            "A service credential read at task start: rotate by updating the secret and "
            "redeploying (a rotation Lambda would restart no task)."
        ),
    ) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self, construct_id, description=f"{self._ctx.prefix}: {description}",
            encryption_key=key or self.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True),
        )  # fmt: skip
        Validations.of(secret).acknowledge(
            Acknowledgment(id="AwsSolutions-SMG4", reason=rotation),
            Acknowledgment(id="HIPAA.Security-SecretsManagerRotationEnabled", reason=rotation),
        )
        return secret

    def _cache(self, vpc: ec2.IVpc) -> elasticache.CfnReplicationGroup:
        tier = self._ctx.settings
        subnets = elasticache.CfnSubnetGroup(
            self, "CacheSubnets", description=f"{self._ctx.prefix} cache",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )  # fmt: skip
        replicated = tier.cache_nodes > 1
        cache = elasticache.CfnReplicationGroup(
            self, "Cache",
            replication_group_description=f"{self._ctx.prefix} limits and PHI vault",
            engine="valkey", engine_version="8.0", cache_node_type=tier.cache_node_type,
            num_cache_clusters=tier.cache_nodes, port=CACHE_PORT,
            automatic_failover_enabled=replicated, multi_az_enabled=replicated,
            transit_encryption_enabled=True, transit_encryption_mode="required",
            at_rest_encryption_enabled=True, kms_key_id=self.key.key_id,
            auth_token=self.cache_token.secret_value.unsafe_unwrap(),
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[self.cache_sg.security_group_id],
            snapshot_retention_limit=15, auto_minor_version_upgrade=True,
        )  # fmt: skip
        if not replicated:
            Validations.of(cache).acknowledge(Acknowledgment(
                id="AwsSolutions-AEC4",
                reason="Tier 1 runs one cache node; limits fall back to local mode while it is "
                "replaced. Tiers 2-5 run Multi-AZ replicas.",
            ))  # fmt: skip
        return cache

    def _database(self, vpc: ec2.IVpc, removal: RemovalPolicy) -> rds.DatabaseCluster:
        tier = self._ctx.settings
        readers = [
            rds.ClusterInstance.serverless_v2(f"Reader{i}", scale_with_writer=True)
            for i in range(1, tier.database_readers + 1)
        ]
        cluster = rds.DatabaseCluster(
            self, "Ledger",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.VER_16_4),
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            readers=readers,
            serverless_v2_min_capacity=tier.database_min_acu,
            serverless_v2_max_capacity=tier.database_max_acu,
            vpc=vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.database_sg], port=DATABASE_PORT,
            default_database_name=LEDGER_DATABASE,
            credentials=rds.Credentials.from_generated_secret(LEDGER_USER,
                                                              encryption_key=self.key),
            storage_encrypted=True, storage_encryption_key=self.key,
            iam_authentication=True,
            backup=rds.BackupProps(retention=Duration.days(35 if self._ctx.is_prod else 7)),
            deletion_protection=self._ctx.is_prod, removal_policy=removal,
            cloudwatch_logs_exports=["postgresql"],
            monitoring_interval=Duration.seconds(60),
        )  # fmt: skip
        # No rotation Lambda: the gateway tasks read this password once, at start (ECS secrets),
        # so a single-user rotation would lock every running task out of the ledger until the
        # next deploy. Rotate with the runbook in deploy/README.md (rotate, then force a new
        # deployment), as for the other service credentials.
        reason = (
            "Read by the gateway tasks at start: rotate with the runbook (rotate the secret, then "
            "force a new deployment); automatic rotation would lock running tasks out."
        )
        # The generated secret is the child "Secret" (``cluster.secret`` is its attachment).
        Validations.of(cluster.node.find_child("Secret")).acknowledge(
            Acknowledgment(id="AwsSolutions-SMG4", reason=reason),
            Acknowledgment(id="HIPAA.Security-SecretsManagerRotationEnabled", reason=reason),
        )
        acks = [
            Acknowledgment(
                id="HIPAA.Security-RDSInBackupPlan",
                reason="Aurora continuous backups with point-in-time restore "
                "(7 days, 35 in prod); an AWS Backup plan would duplicate them.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "service-role/AmazonRDSEnhancedMonitoringRole]",
                reason="The AWS-documented policy of the enhanced monitoring role.",
            ),
        ]
        if not self._ctx.is_prod:
            reason = f"{self._ctx.environment} ledgers are disposable; prod enables protection."
            acks += [Acknowledgment(id="AwsSolutions-RDS10", reason=reason),
                     Acknowledgment(id="HIPAA.Security-RDSInstanceDeletionProtectionEnabled",
                                    reason=reason)]  # fmt: skip
        Validations.of(cluster).acknowledge(*acks)
        return cluster
