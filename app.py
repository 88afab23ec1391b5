#!/usr/bin/env python3
"""CDK entry point. Synth needs no credentials and makes no AWS call."""

import sys

from stacks.application import build_app
from stacks.config import ConfigError

try:
    app, _ = build_app()
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")
app.synth()
