"""Mechanics every pension service stands on: the event envelope and its hash chain, the
ledger (event store) with outbox and inline projections, the inbox consumer, the two
transports (Kafka and the embedded log), the business clock, settings, errors and auth.

Nothing in here knows any service's domain."""
