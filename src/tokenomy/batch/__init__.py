"""Batch inference: JSONL formats, validation with cost estimates, splitting, backends."""
