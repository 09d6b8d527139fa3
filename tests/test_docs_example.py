"""The docs example that composes SchNet blocks with stock PyG layers runs and learns."""
import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_model.py"


def test_custom_model_example_trains():
    spec = importlib.util.spec_from_file_location("custom_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    losses = module.train(steps=20)
    assert losses[-1] < 0.5 * losses[0]
