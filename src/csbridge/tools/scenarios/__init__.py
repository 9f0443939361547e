"""Scripted Josev sessions for the emulator (the DC session).

Imports tools' emulator and messages.
"""

__all__: list[str] = []
