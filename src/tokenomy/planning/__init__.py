"""Planning: provisioned-throughput break-even and sizing, utilisation watch, what-if savings."""
