"""The built-in connectors under Headwater's connector acceptance kit (headwater.testing)."""
