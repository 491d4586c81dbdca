"""The AWS CDK app that runs the gateway on ECS Fargate (never imports ``gateway``)."""
