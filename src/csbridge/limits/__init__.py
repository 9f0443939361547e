"""Pure functions that turn readings and configuration into what Josev is told."""
