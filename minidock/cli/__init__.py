"""The command line: Click commands only. Each parses, calls the engine, prints."""
