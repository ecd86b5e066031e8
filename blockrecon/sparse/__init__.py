"""blockrecon.sparse."""
