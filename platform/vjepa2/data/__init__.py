"""Video and video-action data: formats, decoding, synthetic sources."""
