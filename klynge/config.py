"""Reading a service's TOML settings file with errors that say how to fix them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from klynge.errors import ConfigError


def read_toml(path: Path, create_with: str) -> dict[str, Any]:
    """Return the parsed TOML file, or raise ConfigError naming it and how to create it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; create it with: {create_with}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    except RecursionError as e:  # tomllib recurses per nested array or table (tests/fuzz/)
        raise ConfigError(f"{path} is not valid TOML: its values are nested too deeply") from e
