"""spectheory.simulations: Monte Carlo, replay of recorded logits, reports (later issues)."""
