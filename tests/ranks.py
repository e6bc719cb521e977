"Test helper for the data-parallel tests (issue #12): run a training function in two gloo processes and compare the ranks."
import json
from pathlib import Path
import torch
from fastai.torch_core import rank_distrib, num_distrib
from medrepro.train import launch


def record_rank(ranks: Path, learners: dict):
    "Inside the training function: save this rank's weights and logged values for each named Learner."
    r = rank_distrib()
    for name, learn in learners.items(): torch.save(learn.model.state_dict(), ranks/f'{name}{r}.pt')
    (ranks/f'rank{r}.json').write_text(json.dumps(dict(world=num_distrib(), values={
        name: [list(map(float, v)) for v in learn.recorder.values] for name, learn in learners.items()})))


def run_two_ranks(train, ranks: Path, names) -> dict:
    "Run `train` in 2 CPU processes (gloo); assert both finished in a world of two, logged the same numbers and hold identical weights."
    launch(train, num_processes=2, seed=0)
    r0, r1 = (json.loads((ranks/f'rank{r}.json').read_text()) for r in (0, 1))
    assert r0['world'] == r1['world'] == 2                                   # both ranks finished, in a world of two
    assert r0['values'] == r1['values']                                      # and logged the same (synced) numbers
    weights = {}
    for name in names:
        w0, w1 = (torch.load(ranks/f'{name}{r}.pt', weights_only=True) for r in (0, 1))
        assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0), name   # BatchNorm buffers included
        weights[name] = w0
    return dict(values=r0['values'], weights=weights)
