"""The engine's spine: declared parameters, the registry, the run context, the engine, the CLI."""
