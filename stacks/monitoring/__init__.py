"""Monitoring: dashboard, alarms, log groups, and the report of runs that ended uncaught."""
