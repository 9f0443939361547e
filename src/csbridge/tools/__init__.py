"""The commands people run: the CLI, the demo, live and status views, the Josev emulator and its
scenarios, replay and plot. Nothing is imported here, so each command loads only what it runs.

Imports any package below.
"""

__all__: list[str] = []
