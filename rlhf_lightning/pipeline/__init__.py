"""Pipelines: several stages run in order as one command (``rlhf-lightning pipeline``)."""
