"""Names vulture (80 % confidence) reports as unused that a protocol requires: read
by tests/test_layout.py, never imported."""

# Context managers: __exit__ takes the exception triple whether it reads it or not.
exc_type  # noqa: B018
tb  # noqa: B018
# pydantic-settings calls settings_customise_sources with every source by keyword.
dotenv_settings  # noqa: B018
file_secret_settings  # noqa: B018
