pytest_plugins = ["rapport_events.testing.pytest_plugin"]
