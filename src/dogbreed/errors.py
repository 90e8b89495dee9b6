"""Domain errors. The CLI turns each into a one-line message and exit code 1."""


class DogbreedError(Exception):
    """Base of every error the user can fix; the message says what to do."""


class DataError(DogbreedError):
    """Raised when a dataset is missing, badly laid out or has inconsistent splits."""


class DownloadError(DogbreedError):
    """Raised when the dataset or pretrained weights cannot be fetched (offline, bad checksum)."""


class WeightsUnavailableError(DownloadError):
    """Raised when `--weights imagenet` is asked for but the weights are neither cached nor downloadable."""


class ConfigError(DogbreedError):
    """Raised for bad flags, settings or hyperparameters, before any job starts."""


class JobNotFoundError(DogbreedError):
    """Raised when a job name is unknown to the workspace or the backend."""


class JobFailedError(DogbreedError):
    """Raised when a training or tuning job ends Failed; carries the failure reason."""


class StateError(DogbreedError):
    """Raised when a command needs workspace state that an earlier command should have recorded."""


class EndpointError(DogbreedError):
    """Raised when an endpoint cannot be reached, is unhealthy or answers with an error."""


class MissingDependencyError(DogbreedError):
    """Raised when an optional dependency is needed for a feature but not installed."""
