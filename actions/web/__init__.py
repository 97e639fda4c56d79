"""The private web actions of messagingWeb: they hold the secrets and check the caller."""
