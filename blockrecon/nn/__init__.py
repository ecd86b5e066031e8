"""blockrecon.nn."""
