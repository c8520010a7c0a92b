"""The library every gateway function imports: config, errors, auth, limits, storage,
the Mistral client and the HTTP plumbing, one small module per concern."""
