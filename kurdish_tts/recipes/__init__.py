"""Named training recipes: YAML files of script arguments, shipped with the package.

`--recipe NAME` reads `kurdish_tts/recipes/NAME.yaml`; `--recipe path/to/file.yaml` reads any file. The repository's
top-level `recipes/` folder only points here (a link would need Developer Mode on Windows): `--recipe
recipes/NAME.yaml`, as older instructions write it, finds the shipped recipe too, unless such a file exists. A recipe
sets the defaults of the script's arguments, so flags given on the command line still win: `--recipe
rtx2070_finetune --learning_rate 1e-5`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..errors import UsageError, read_text

RECIPES_DIR = Path(__file__).parent


class RecipeError(UsageError):
    """A recipe that does not exist or cannot be used; the message says what to do (exit status 2)."""


def available_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML file behind a recipe name (`demo`) or path (`my_recipe.yaml`)."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.parent != Path("."):
        if path.is_file():
            return path
        shipped = RECIPES_DIR / path.name
        if path.parent.name == "recipes" and shipped.is_file():
            return shipped
        raise RecipeError(
            f"recipe file {str(path)!r} does not exist; the shipped recipes are {', '.join(available_recipes())} "
            "(--recipe NAME)"
        )
    packaged = RECIPES_DIR / f"{name_or_path}.yaml"
    if not packaged.is_file():
        raise RecipeError(
            f"unknown recipe {str(name_or_path)!r}; choose one of {', '.join(available_recipes())} or pass the path "
            "of a YAML file"
        )
    return packaged


def load_recipe(name_or_path: str | os.PathLike) -> dict:
    """The recipe's argument values, keyed by argument name."""
    path = recipe_path(name_or_path)
    try:
        values = yaml.safe_load(read_text(path, error=RecipeError))
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe {path} is not valid YAML: {error}") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise RecipeError(f"recipe {path} must be a mapping of argument names to values, got {type(values).__name__}")
    return values
