"""blockrecon.seg."""
