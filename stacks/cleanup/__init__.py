"""Cleanup: on stack deletion, the SageMaker resources the pipeline created at run time."""
