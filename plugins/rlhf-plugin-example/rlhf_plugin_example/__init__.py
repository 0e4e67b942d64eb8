"""rlhf-plugin-example: an rlhf-lightning plugin distribution to copy.

rlhf-lightning never imports this package by name: it finds the classes through the entry points
declared in ``pyproject.toml``.
"""

__version__ = "0.1.0"
