"""Building the Lambda artifacts (functions and the SDK layer) that template.yaml deploys."""
