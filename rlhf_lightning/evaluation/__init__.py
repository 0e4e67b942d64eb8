"""Does alignment work: sample policies' answers to held-out prompts, compare them with a baseline's
(win rates, KL, rewards, length, diversity, constraint violations) and write a report folder.
Used by ``rlhf-lightning evaluate``; submodules are imported on use (this package stays light)."""
