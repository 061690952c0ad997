"""The fault suite (issue 7): faults, abuse and bad input on loopback, each test bounded.

Run alone with ``python -m pytest tests/faults``. Servers that must be limited (file
descriptors), signalled or measured (RSS, CPU time) run in a child process (``child_server.py``).
"""
