"""Pure indicator rules: filters, usage status, act type of a site, small-count suppression."""
