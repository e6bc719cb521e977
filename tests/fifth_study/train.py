"The toy study's training: a few one-weight models, each trained once through `train.trained`, so a failed run resumes."
import numpy as np, torch
from medrepro.core import register_model, ModelConfig
from medrepro.train import trained


@register_model('fifth_scale')
def fifth_scale(): return torch.nn.Linear(1, 1, bias=False)


def fit_scale(values, i, steps=50):
    "Model i: fit y = w x to the points (x, (i + 1) * x) with plain gradient descent (a toy training that prints one line per step block)."
    x = torch.tensor(np.asarray(values, np.float32)).view(-1, 1); y = (i + 1) * x
    torch.manual_seed(i); net = fifth_scale(); opt = torch.optim.SGD(net.parameters(), lr=0.01)
    for s in range(steps):
        opt.zero_grad(); loss = torch.nn.functional.mse_loss(net(x), y); loss.backward(); opt.step()
        if (s + 1) % 25 == 0: print(f'm{i} step {s + 1} loss {loss.item():.4f}', flush=True)
    return net


def train_models(values, folder, n_models=2, fail_after=None) -> list:
    "Train `n_models` models, model i in `folder/m<i>` (each once: `train.trained`); raise after `fail_after` models, as a crash would."
    models = []
    for i in range(n_models):
        if fail_after is not None and i >= fail_after: raise RuntimeError(f'simulated crash after {fail_after} model(s)')
        cfg = ModelConfig('fifth_scale', meta=dict(model=i, n=len(values)))
        def fit(i=i):
            print(f'training m{i}', flush=True)
            return fit_scale(values, i)
        models.append(trained(folder/f'm{i}', fit, cfg))
    return models
