"""SageMaker real-time endpoints for the tier's models (TGI containers), with autoscaling.

Endpoint names are fixed (``DeployContext.endpoint_name``) so IAM policies can name exactly this
deployment's endpoints (``endpoint_arns``), never ``endpoint/*``.
"""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    Aws,
    Stack,
    Validations,
    aws_applicationautoscaling as appscaling,
    aws_ec2 as ec2,
    aws_iam as iam,
    aws_sagemaker as sagemaker,
)

from deploy.settings import TGI_IMAGE, DeployContext, SageMakerModel

INVOKE_ACTIONS = ("sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream")
_INVOCATIONS_PER_INSTANCE = 60.0
"""Target of the per-minute invocations per instance scaling policy (long generations: low)."""


def endpoint_arns(ctx: DeployContext) -> list[str]:
    """ARNs of this deployment's endpoints (and nothing else)."""
    return [
        f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/"
        f"{ctx.endpoint_name(m)}"
        for m in ctx.models
    ]


def grant_invoke(ctx: DeployContext, role: iam.IRole) -> None:
    """Allow ``role`` to invoke this deployment's endpoints only."""
    role.add_to_principal_policy(iam.PolicyStatement(
        actions=list(INVOKE_ACTIONS), resources=endpoint_arns(ctx),
    ))  # fmt: skip


def add_endpoints(stack: Stack, ctx: DeployContext, vpc: ec2.IVpc) -> list[sagemaker.CfnEndpoint]:
    """Model, endpoint config, endpoint and scaling for each model of the tier."""
    role = iam.Role(stack, "SageMakerRole",
                    assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))  # fmt: skip
    role.add_to_policy(iam.PolicyStatement(
        actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        resources=[f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:763104351884:repository/"
                   "huggingface-pytorch-tgi-inference"],
    ))  # fmt: skip
    role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
    role.add_to_policy(iam.PolicyStatement(
        actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        resources=[f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:"
                   "/aws/sagemaker/Endpoints/" + f"{ctx.prefix}-*"],
    ))  # fmt: skip
    role.add_to_policy(iam.PolicyStatement(
        actions=["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                 "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                 "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                 "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
        resources=["*"],
    ))  # fmt: skip
    Validations.of(role).acknowledge(
        Acknowledgment(id="AwsSolutions-IAM5[Resource::*]",
                       reason="ecr:GetAuthorizationToken and the VPC ENI actions SageMaker needs "
                       "to place the model in the VPC support no resource scoping."),
        Acknowledgment(id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
                       f"<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/{ctx.prefix}-*]",
                       reason="The log groups SageMaker creates per endpoint of this deployment."),
    )  # fmt: skip
    sg = ec2.SecurityGroup(stack, "EndpointsSg", vpc=vpc, description="SageMaker model containers")
    subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
    return [_endpoint(stack, ctx, model, role, sg, subnets) for model in ctx.models]


def _endpoint(stack: Stack, ctx: DeployContext, model: SageMakerModel, role: iam.Role,
              sg: ec2.SecurityGroup, subnets: list[str]) -> sagemaker.CfnEndpoint:  # fmt: skip
    name = ctx.endpoint_name(model)
    construct_id = "".join(part.title() for part in model.alias.split("-"))
    cfn_model = sagemaker.CfnModel(
        stack, f"{construct_id}Model",
        execution_role_arn=role.role_arn,
        primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
            image=TGI_IMAGE.format(region=Aws.REGION),
            environment={
                "HF_MODEL_ID": model.hf_model_id,
                "SM_NUM_GPUS": str(model.gpus),
                "MAX_TOTAL_TOKENS": str(model.max_total_tokens),
                "MAX_INPUT_TOKENS": str(model.max_total_tokens // 2),
            },
        ),
        vpc_config=sagemaker.CfnModel.VpcConfigProperty(
            security_group_ids=[sg.security_group_id], subnets=subnets),
    )  # fmt: skip
    cfn_model.node.add_dependency(role)
    config = sagemaker.CfnEndpointConfig(
        stack, f"{construct_id}Config",
        production_variants=[sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name="AllTraffic", model_name=cfn_model.attr_model_name,
            initial_instance_count=ctx.settings.endpoint_min_instances,
            instance_type=model.instance_type, initial_variant_weight=1.0,
            container_startup_health_check_timeout_in_seconds=1800,
            model_data_download_timeout_in_seconds=1800,
        )],
    )  # fmt: skip
    endpoint = sagemaker.CfnEndpoint(
        stack, f"{construct_id}Endpoint", endpoint_name=name,
        endpoint_config_name=config.attr_endpoint_config_name,
    )  # fmt: skip
    Validations.of(config).acknowledge(
        Acknowledgment(id="AwsSolutions-SM2",
                       reason=f"{model.instance_type} has NVMe instance storage, for which "
                       "SageMaker rejects a KmsKeyId; instance storage is hardware-encrypted."),
        Acknowledgment(id="HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured",
                       reason=f"{model.instance_type} has NVMe instance storage, for which "
                       "SageMaker rejects a KmsKeyId; instance storage is hardware-encrypted."),
    )  # fmt: skip
    Validations.of(cfn_model).acknowledge(Acknowledgment(
        id="AwsSolutions-SM3",
        reason="TGI loads the weights from the Hugging Face Hub at start (egress through NAT); "
        "network isolation needs the weights copied to S3 first (model_data_url).",
    ))  # fmt: skip
    _scale(stack, ctx, construct_id, endpoint)
    return endpoint


def _scale(stack: Stack, ctx: DeployContext, construct_id: str,
           endpoint: sagemaker.CfnEndpoint) -> None:  # fmt: skip
    tier = ctx.settings
    target = appscaling.ScalableTarget(
        stack, f"{construct_id}Scaling",
        service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
        resource_id=f"endpoint/{endpoint.attr_endpoint_name}/variant/AllTraffic",
        scalable_dimension="sagemaker:variant:DesiredInstanceCount",
        min_capacity=tier.endpoint_min_instances, max_capacity=tier.endpoint_max_instances,
    )  # fmt: skip
    target.scale_to_track_metric(
        "Invocations",
        target_value=_INVOCATIONS_PER_INSTANCE,
        predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
    )  # fmt: skip
