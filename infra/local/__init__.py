"""The local stack: template.yaml's resources on a moto server, its routes behind a local gateway, its
event sources as pollers, and the same handlers that Lambda runs."""
