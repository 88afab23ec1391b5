"""Intake: uploads under datasets/ -> one training per snapshot; the dataset rules, snapshot and validation."""
