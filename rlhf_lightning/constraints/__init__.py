"""Constraint-checker plugins. Light to import: the classifier checker loads transformers on use."""

from rlhf_lightning.constraints.base import ConstraintChecker

__all__ = ["ConstraintChecker"]
