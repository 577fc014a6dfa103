class ConfigError(ValueError):
    """A bad setting, found before any expensive work. The message is one line that
    names the setting, the bad value and the valid choices; entry points print it and
    exit with code 2."""


def choices_error(setting: str, value, choices) -> ConfigError:
    listed = ", ".join(str(c) for c in choices)
    return ConfigError(f"{setting}={value!r} is not valid; choices: {listed}")


MAX_SEED = 2**32 - 1  # numpy's and torch's seeding both take this range


def check_seed(setting: str, value: int) -> None:
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{setting}={value} must be between 0 and {MAX_SEED}")


def check_threads(value) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"threads={value} must be >= 1 (or null for torch's default)")
