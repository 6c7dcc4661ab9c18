"""Errors that are the user's to fix. The CLI prints them without a traceback and exits 2."""


class UserError(Exception):
    """Bad input: a config key, a file, a sample, a shard URL. The message names the fix."""

    exit_code = 2


class ConfigError(UserError):
    """One error for every problem found in a config, listed one per line."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the {source}:\n{lines}")
