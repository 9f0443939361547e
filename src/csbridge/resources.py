"""Kept for `from csbridge.resources import example_config` (docs/testing.md): packaged files
are found by csbridge.support."""

from __future__ import annotations

from csbridge.support.resources import example_config, resource_dir, schema_dir

__all__ = ["example_config", "resource_dir", "schema_dir"]
