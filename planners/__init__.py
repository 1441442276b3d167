"""LTLf engine, LTL-constrained and grounded plan decoding, and the Planner API."""
