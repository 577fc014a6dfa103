class ConfigError(ValueError):
    """A bad setting, found before any expensive work. The message is one line that
    names the setting, the bad value and the valid choices; entry points print it and
    exit with code 2."""


def choices_error(setting: str, value, choices) -> ConfigError:
    listed = ", ".join(str(c) for c in choices)
    return ConfigError(f"{setting}={value!r} is not valid; choices: {listed}")
