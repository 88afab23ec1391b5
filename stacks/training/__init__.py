"""Training: the training workflow (JumpStart fine-tune), its roles, the JumpStart lock, packaging, failure explanations."""
