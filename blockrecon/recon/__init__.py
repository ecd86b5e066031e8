"""blockrecon.recon."""
