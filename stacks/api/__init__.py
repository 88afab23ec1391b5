"""API: the HTTPS front door (API Gateway from openapi.json), its Lambda functions and the web page."""
