"""The recipes ship inside the package; `recipes/` at the repository root is a plain folder that points there (a git
symlink needs Developer Mode on Windows), and `--recipe recipes/NAME.yaml` still finds the shipped recipe."""

import configparser
from pathlib import Path

import pytest

from kurdish_tts.recipes import RECIPES_DIR, RecipeError, available_recipes, load_recipe, recipe_path

ROOT = Path(__file__).resolve().parents[1]


def test_the_root_recipes_folder_is_no_link_and_names_every_shipped_recipe():
    root = ROOT / "recipes"
    assert root.is_dir() and not root.is_symlink()
    readme = (root / "README.md").read_text(encoding="utf-8")
    for name in available_recipes():
        assert f"`{name}`" in readme, name
    assert not list(root.glob("*.yaml"))  # one copy of each recipe, in the package


def test_recipes_are_found_by_name_and_by_their_old_root_path(tmp_dir, monkeypatch):
    assert recipe_path("xtts_h100") == RECIPES_DIR / "xtts_h100.yaml"
    monkeypatch.chdir(ROOT)
    assert load_recipe("recipes/xtts_h100.yaml") == load_recipe("xtts_h100")
    # A file at that path wins: it is the user's own recipe.
    monkeypatch.chdir(tmp_dir)
    (tmp_dir / "recipes").mkdir()
    (tmp_dir / "recipes" / "demo.yaml").write_text("learning_rate: 0.5\n", encoding="utf-8")
    assert load_recipe("recipes/demo.yaml") == {"learning_rate": 0.5}
    with pytest.raises(RecipeError, match="demo"):
        load_recipe("recipes/no_such_recipe.yaml")


def test_the_packaging_ships_the_recipes():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert "recipes/*.yaml" in config["options.package_data"]["kurdish_tts"]
    assert len(available_recipes()) >= 7


def test_an_unknown_recipe_names_the_known_ones():
    with pytest.raises(RecipeError, match="demo"):
        load_recipe("no_such_recipe")


def test_a_recipe_that_is_not_utf8_names_the_line(tmp_dir):
    recipe = tmp_dir / "mine.yaml"
    recipe.write_bytes(b"data: demo\nsample_text: Roj ba\xea\n")
    with pytest.raises(RecipeError, match=r"mine.yaml, line 2, column 20: byte 0xea is not UTF-8"):
        load_recipe(recipe)
