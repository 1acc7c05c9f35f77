"""Built-in plugins, one package per layer; each is switched on or off in plugins.toml."""
