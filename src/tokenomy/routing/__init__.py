"""Model routing: tiers, rules, a validating cascade, a trained classifier, evaluation, calibration, drift."""
