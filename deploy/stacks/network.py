"""The network: a VPC with public (ALB only), private (tasks) and isolated (data) subnets.

Tasks reach AWS APIs through VPC endpoints (ECR, logs, Secrets Manager, KMS, SageMaker runtime,
STS, S3); NAT remains for LiteLLM and the TGI containers, which fetch model weights. Flow logs go to
a KMS-encrypted log group.
"""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    RemovalPolicy,
    Stack,
    Validations,
    aws_ec2 as ec2,
    aws_ecs as ecs,
    aws_kms as kms,
    aws_s3 as s3,
)
from constructs import Construct

from deploy.settings import DeployContext
from deploy.stacks.logs import allow_logs_service, encrypted_log_group

VPC_CIDR = "10.40.0.0/16"
_INTERFACE_ENDPOINTS = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
}


class NetworkStack(Stack):
    """VPC, endpoints, flow logs, the logs KMS key and the gateway's security groups.

    The gateway's groups (ALB, tasks) live here so the data and ai stacks can admit the tasks, and
    the ALB reach them, without a dependency cycle between stacks.
    """

    def __init__(self, scope: Construct, construct_id: str, *, ctx: DeployContext,
                 **kwargs: object) -> None:  # fmt: skip
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        tier = ctx.settings
        self.logs_key = kms.Key(
            self, "LogsKey", enable_key_rotation=True, alias=f"{ctx.prefix}/logs",
            description="CloudWatch Logs of this deployment",
        )  # fmt: skip
        allow_logs_service(self.logs_key, self.region)
        self.vpc = ec2.Vpc(
            self, "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=tier.max_azs,
            nat_gateways=tier.nat_gateways,
            restrict_default_security_group=True,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC,
                                        cidr_mask=24, map_public_ip_on_launch=False),
                ec2.SubnetConfiguration(name="private",
                                        subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                        cidr_mask=20),
                ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                        cidr_mask=24),
            ],
        )  # fmt: skip
        self.gateway_tasks_sg = ec2.SecurityGroup(
            self, "GatewayTasksSg", vpc=self.vpc, description="Gateway tasks (client of data, ai)",
        )  # fmt: skip
        self.gateway_alb_sg = ec2.SecurityGroup(
            self, "GatewayAlbSg", vpc=self.vpc, allow_all_outbound=False,
            description="Public gateway ALB",
        )  # fmt: skip
        Validations.of(self.gateway_alb_sg).acknowledge(Acknowledgment(
            id="AwsSolutions-EC23",
            reason="The public entry point: the internet reaches the ALB on 80/443 only.",
        ))  # fmt: skip
        flow_logs = encrypted_log_group(self, "FlowLogs", ctx, self.logs_key)
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )  # fmt: skip
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        for name, service in _INTERFACE_ENDPOINTS.items():
            endpoint = self.vpc.add_interface_endpoint(
                name, service=service, private_dns_enabled=True, open=False,
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            )  # fmt: skip
            # A literal CIDR (not the VPC's token) so the checks can read the rule.
            endpoint.connections.allow_from(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443))
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=self.vpc, cluster_name=ctx.prefix,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )  # fmt: skip
        self.access_logs = self._access_log_bucket(ctx)
        for subnet in self.vpc.public_subnets:
            Validations.of(subnet).acknowledge(Acknowledgment(
                id="HIPAA.Security-VPCNoUnrestrictedRouteToIGW",
                reason="Public subnets hold only the internet-facing ALB and the NAT gateways; "
                "tasks, caches and databases are in private and isolated subnets.",
            ))  # fmt: skip

    def _access_log_bucket(self, ctx: DeployContext) -> s3.Bucket:
        """ALB access logs (ALBs deliver to SSE-S3 buckets only, never to a KMS key)."""
        bucket = s3.Bucket(
            self, "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True, versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            server_access_logs_prefix="s3-access/",
            removal_policy=RemovalPolicy.RETAIN if ctx.is_prod else RemovalPolicy.DESTROY,
            auto_delete_objects=False,
        )  # fmt: skip
        Validations.of(bucket).acknowledge(
            Acknowledgment(id="HIPAA.Security-S3DefaultEncryptionKMS",
                           reason="ALB access logs can only be delivered to SSE-S3 buckets."),
            Acknowledgment(id="HIPAA.Security-S3BucketReplicationEnabled",
                           reason="Access logs of this region; versioned and retained in prod."),
        )  # fmt: skip
        return bucket
