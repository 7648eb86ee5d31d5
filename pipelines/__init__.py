"""Ray Data pipelines over the ``vjepa2`` library: streams of decoded clips and windows.

Run from the repository root. ``clips`` builds the Phase-1 stream, ``windows`` the Phase-2
(frames, actions) stream; both share the manifest (``manifest``), the decode actors and the
per-worker iteration helper (``clips.iter_clip_batches``).
"""
