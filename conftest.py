pytest_plugins = ["pension_shared.testing"]
