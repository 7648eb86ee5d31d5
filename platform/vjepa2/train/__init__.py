"""Training pieces usable without Ray: step functions, checkpoints, builders, a local loop."""
