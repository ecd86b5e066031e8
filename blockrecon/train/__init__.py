"""Training: simulated training pairs, train steps and evaluation for unrolled networks."""
