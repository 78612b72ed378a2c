"""The recipes ship inside the package; `recipes/` at the repository root is the same folder, as the README says."""

from pathlib import Path

import pytest

from kurdish_tts.recipes import RecipeError, load_recipe, recipe_path

ROOT = Path(__file__).resolve().parents[1]


def test_the_root_recipes_folder_is_the_shipped_one():
    shipped = sorted(path.name for path in recipe_path("demo").parent.glob("*.yaml"))
    assert "xtts_h100.yaml" in shipped and "rtx2070_finetune.yaml" in shipped
    assert sorted(path.name for path in (ROOT / "recipes").glob("*.yaml")) == shipped
    assert load_recipe(ROOT / "recipes" / "xtts_h100.yaml") == load_recipe("xtts_h100")


def test_an_unknown_recipe_names_the_known_ones():
    with pytest.raises(RecipeError, match="demo"):
        load_recipe("no_such_recipe")
