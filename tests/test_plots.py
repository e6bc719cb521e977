import matplotlib
matplotlib.use('Agg')
import numpy as np, pandas as pd, pytest
from medrepro.plots import plot_confusion, plot_confusion_grid, history, plot_learning_curves, show_panels, compare_table, plot_table


def test_confusion_counts_are_drawn():
    fig = plot_confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], labels=[0, 1])
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ['1', '1', '1', '2']


def test_confusion_grid_layout():
    pairs = {f'C{i}': ([0, 1, 1], [0, 1, 0]) for i in range(1, 8)}
    fig = plot_confusion_grid(pairs, labels=[0, 1], ncols=4)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) >= 8 and len([a for a in visible if a.get_title()]) == 7


def test_learning_curves_from_csv(tmp_path):
    log = tmp_path/'history.csv'
    pd.DataFrame(dict(epoch=[0, 1], train_loss=[1., .5], valid_loss=[.9, .6], dice=[.2, .4], time=['0:01', '0:01'])).to_csv(log, index=False)
    fig = plot_learning_curves(log)
    assert len(fig.axes) == 2
    assert {l.get_label() for l in fig.axes[0].lines} == {'train_loss', 'valid_loss'}
    assert {l.get_label() for l in fig.axes[1].lines} == {'dice'}


def test_history_from_recorder_like():
    class Rec:
        metric_names = ['epoch', 'train_loss', 'valid_loss', 'dice', 'time']
        values = [[1., .9, .3], [.6, .7, .5]]
    h = history(Rec())
    assert list(h.columns) == ['epoch', 'train_loss', 'valid_loss', 'dice'] and h.epoch.tolist() == [0, 1]


def test_panels_shape():
    img = np.zeros((8, 8)); m = np.zeros((8, 8)); m[2:5, 2:5] = 1
    fig = show_panels([img, img], [m, m], [m, 1 - m])
    assert len(fig.axes) == 8


def test_compare_table_difference():
    t = compare_table({'f1': .8, 'jaccard': .7}, {'f1': .85, 'extra': 1.})
    assert t.loc['f1', 'ours - paper'] == pytest.approx(.05)
    assert np.isnan(t.loc['extra', 'paper']) and np.isnan(t.loc['jaccard', 'ours'])
    fig = plot_table(t, title='x')
    assert fig.axes
