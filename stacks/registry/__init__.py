"""Registry: the model registry and pipeline-state tables."""
