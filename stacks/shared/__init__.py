"""Pieces every unit uses: cdk-nag acknowledgments, the Powertools layer, Lambda code assets, Step Functions budgets."""
