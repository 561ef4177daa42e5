"""Pure domain rules: no I/O, no framework imports (checked by `make lint`)."""
