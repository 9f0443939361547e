"""Scripted Josev sessions for the emulator against a simulated station: a whole DC session, a
whole AC session, misuse (out-of-sequence requests that must be refused), and a bidirectional
DC session with a meter (bpt-session), with what they share and a second client that watches
the station's limits reports for output.

Imports tools' emulator, messages and mqtt.
"""

__all__: list[str] = []
