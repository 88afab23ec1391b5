"""The notifications topic: training and deployment outcomes, alarms, runs that ended uncaught."""
