"""Test helpers: a real Tansu broker launcher, in-memory fakes and pytest fixtures."""
