"""EchoNet-Dynamic (notebooks 20-25)."""
from . import sample as _sample   # noqa: F401  registers the sample generator until the shared discovery imports <study>.sample
