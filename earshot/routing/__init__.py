"""Acting on answers: routing rules, the durable outbox of webhook deliveries, spike alerts."""
