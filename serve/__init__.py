"""Ray Serve applications (run from the repository root)."""
