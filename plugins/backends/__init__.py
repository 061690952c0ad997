"""Built-in backends plugins (one module each, registered by entry point)."""
