"""Built-in endpoint plugins (one module each, registered by entry point): ``ssl:``/``tls:``,
``systemd:`` and ``haproxy:``. Each uses only the public endpoint-plugin API
(``framework.endpointstrings`` and the ``register_endpoints`` hook), as a third party would."""
