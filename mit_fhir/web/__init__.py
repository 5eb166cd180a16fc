"""Flask plumbing shared by the HTTP layer (api, ui, security) and the app factory."""
