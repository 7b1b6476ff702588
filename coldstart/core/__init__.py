"""Bottom layer: settings, the SQL store and its table definitions."""
