"""Optimizer and learning-rate schedule defaults injected into every stage (pure torch)."""
