"""OpenTelemetry spans and metrics for every provider call (GenAI semantic conventions)."""
