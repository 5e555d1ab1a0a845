"""Rapport console: the web app operators use, over the other services' HTTP APIs."""
