"""Plugins shipped inside the host, registered through the same hooks as any third-party plugin."""
