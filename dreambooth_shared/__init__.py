"""What the functions, the constructs and the CLI share: the contract of names (contract.py), the dataset
rules (dataset_rules.py) and the autoscaling rules (autoscaling.py).

One package, imported under one name, `dreambooth_shared`, on every side: the constructs and the CLI from
the repository, the functions from their asset, into which the build copies this folder beside the
capability's own modules (stacks/shared/assets.py). So it never imports aws_cdk, only the standard library
and botocore (what every function has).
"""
