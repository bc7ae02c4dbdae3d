"""Measuring: the modules (meter), their RT windows (sampler, seq, shadow), the period
latch (metering) and what it is worth (booking); power events (events)."""
