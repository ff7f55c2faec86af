"""Framework adapters: each imports its framework and nothing else does."""
