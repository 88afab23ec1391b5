"""Storage: the data bucket (datasets/, models/, generated/, inference/, uploads/)."""
