"""The docs example that composes SchNet blocks with stock PyG layers runs and learns."""


def test_custom_model_example_trains(load_repo_file):
    module = load_repo_file("docs/examples/custom_model.py")
    losses = module.train(steps=20)
    assert losses[-1] < 0.5 * losses[0]
