"""csbridge: the charging-station side of Josev's MQTT API."""

__version__ = "0.1.0"
