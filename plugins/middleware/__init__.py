"""Built-in middleware plugins (one module each, registered by entry point)."""
