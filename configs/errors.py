class LabError(Exception):
    """A failure the user can act on, said in one line: entry points print `error: <message>`
    (no traceback) and exit with `exit_code`."""

    exit_code = 1


class ConfigError(LabError, ValueError):
    """A bad setting, found before any expensive work. The message is one line that
    names the setting, the bad value and the valid choices; entry points print it and
    exit with code 2."""

    exit_code = 2


class BadFile(ConfigError):
    """A file the lab reads (given by the user, or written by an earlier stage) is missing,
    damaged or in a format the lab cannot read. The message names the file, what is wrong
    with it and what to do; like a bad setting, it is found before the expensive work where
    possible, and entry points exit with code 2."""

    def __init__(self, path, problem: str, advice: str = ""):
        self.path, self.problem, self.advice = path, problem, advice
        super().__init__(f"{path}: {problem}" + (f"; {advice}" if advice else ""))

    def __reduce__(self):  # pickled across processes (submitit jobs) with its three parts
        return type(self), (self.path, self.problem, self.advice)


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
