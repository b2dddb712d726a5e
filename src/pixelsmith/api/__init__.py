"""The HTTP layer: wire models (protocol), logic (serving) and thin routes, per endpoint family."""
