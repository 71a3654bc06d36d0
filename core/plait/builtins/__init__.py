"""plait's own plugins, registered by :mod:`plait.plugins` before any entry-point plugin."""
