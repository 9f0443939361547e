"""Tests of a station in this process against a real mosquitto (the session's, or one of
the test's own) and python-can's virtual buses."""
