"""`tools/recipe_sweep.py`: the README's sweeps of the default recipe."""

import pytest
import tool_loading

from tfkd import datasets
from tfkd import models
from tfkd import recipes

TINY = recipes.Recipe(epochs=2, patience=1, teachers=2, transfer_size=1.0)


@pytest.fixture(scope="module")
def sweep_tool():
    return tool_loading.load_tool("recipe_sweep")


def test_rows_parse_recipe_fields(sweep_tool):
    assert sweep_tool._row("alpha=0.1,temperature=1") == {
        "alpha": 0.1, "temperature": 1}
    assert sweep_tool._row("") == {}
    with pytest.raises(Exception, match="Unknown Recipe field 'alpah'"):
        sweep_tool._row("alpah=0.1")
    with pytest.raises(Exception, match="Unknown student setting 'dim'"):
        sweep_tool._student_overrides("dim=5")


def test_sweep_reuses_saved_teachers(sweep_tool, tmp_path):
    # The second sweep loads the first one's teachers instead of training
    # them: it must distil exactly the same student, and the scratch row
    # must be the larger student's.
    data = datasets.synthetic_movielens(num_ratings=2000, seed=3)
    kwargs = dict(recipe=TINY, teachers_dir=str(tmp_path), data=data,
                  student={"embedding_dim": 6}, scratch=True)
    first = sweep_tool.sweep(0, [{}, {"alpha": 0.5}], **kwargs)
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["seed0_member0.keras", "seed0_member1.keras"]
    again = sweep_tool.sweep(0, [{"alpha": 0.5}], **kwargs)
    assert list(first) == ["scratch", "default recipe", "alpha 0.5"]
    assert again["alpha 0.5"]["auc"] == first["alpha 0.5"]["auc"]
    default_params = models.student(data.spec).count_params()
    assert first["scratch"]["params"] > default_params
    assert first["scratch"]["params"] == first["alpha 0.5"]["params"]
