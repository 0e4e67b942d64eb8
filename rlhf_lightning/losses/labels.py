"""The label convention every stage shares.

``labels`` are aligned with ``input_ids``; a position whose label is :data:`IGNORE_INDEX` has no
target (prompt, padding, tool output): no loss and no log-prob is taken there. ``-100`` is the value
PyTorch's ``cross_entropy(ignore_index=...)`` and Hugging Face models use. Math layer: no imports.
"""

IGNORE_INDEX = -100
