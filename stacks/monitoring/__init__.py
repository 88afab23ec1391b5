"""Monitoring: dashboard, alarms, and the report of runs that ended uncaught.

It takes what it watches; only the stack (and its pipeline composer) import it.
"""
