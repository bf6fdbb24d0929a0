"""qbench.testing: a pytest plugin (entry point ``pytest11``) for plugin authors."""
