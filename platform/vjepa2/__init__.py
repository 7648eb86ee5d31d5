"""V-JEPA 2 core library (pure PyTorch)."""
