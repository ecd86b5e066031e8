"""blockrecon.physics."""
