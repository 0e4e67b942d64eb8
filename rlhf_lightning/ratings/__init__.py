"""Ratings from comparisons: Bradley–Terry (maximum likelihood, Davidson ties), Elo, Plackett–Luce,
the comparison graph's connectivity and several annotators' votes. Math layer: torch and the standard
library only; ``rlhf-lightning ratings`` (:mod:`rlhf_lightning.commands.ratings`) is the command."""
