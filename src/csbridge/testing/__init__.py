"""csbridge's pytest plugin: broker, station, Josev and CAN fixtures for a test engineer's suite.
Nothing is imported here; pytest loads csbridge.testing.plugin through its entry point.

Imports any package below.
"""

__all__: list[str] = []
