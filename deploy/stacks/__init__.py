"""The app's stacks: network, data, auth, ai (LiteLLM and SageMaker) and gateway."""
