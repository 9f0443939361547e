"""Scripted Josev sessions for the emulator against a simulated station: a whole DC session, a
whole AC session, and misuse (out-of-sequence requests that must be refused), with what they
share and a second client that watches the station's limits reports for output.

Imports tools' emulator, messages and mqtt.
"""

__all__: list[str] = []
