"""A region in a box: the Maillage demo (`make demo`)."""
