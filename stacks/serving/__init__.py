"""Serving: the deploy workflow (model, endpoint config, endpoint), the endpoint waiters and autoscaling."""
