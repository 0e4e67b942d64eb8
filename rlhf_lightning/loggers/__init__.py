"""Glue between the stages and Lightning's loggers (what the metric API does not carry)."""
