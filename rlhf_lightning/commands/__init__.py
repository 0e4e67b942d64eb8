"""Sub-commands of ``rlhf-lightning`` that are not Lightning stages (``plugins``, ``score``)."""
