"""Built-in protocols plugins (one module each, registered by entry point)."""
