"""Model routing: tiers, a rule router, a validating cascade (classifier and evaluation to follow)."""
