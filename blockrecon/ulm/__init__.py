"""blockrecon.ulm."""
