import matplotlib
matplotlib.use('Agg')
import numpy as np, pandas as pd, pytest
from medrepro.plots import plot_confusion, plot_confusion_grid, history, plot_learning_curves, show_panels, panel_axes, compare_table, plot_table


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


def _panels(shapes, **kw):
    rng = np.random.default_rng(0)
    ims = [rng.random(s) for s in shapes]
    gray = [im if im.ndim == 2 else im.mean(-1 if im.shape[-1] == 3 else 0) for im in ims]
    fig = show_panels(ims, [g > .7 for g in gray], [g > .6 for g in gray], titles=[f'{s}' for s in shapes], **kw)
    fig.draw_without_rendering()                       # imshow's aspect is applied here: a box that does not fit shrinks
    return fig, np.array(fig.axes).reshape(len(shapes), -1)


@pytest.mark.parametrize('shapes', [[(52, 70)] * 3, [(40, 40)] * 2, [(70, 30)] * 2, [(52, 70), (40, 40), (70, 30), (96, 128, 3)]],
                         ids=['wide', 'square', 'tall', 'mixed'])
@pytest.mark.parametrize('kw', [{}, dict(errors=False, size=1.6)], ids=['default', 'small'])
def test_panels_rows_fit_their_images(shapes, kw):
    fig, axs = _panels(shapes, **kw)
    W, H = fig.get_size_inches()
    for ax in axs.flat:                                # the drawn image fills its cell: no white band above, below or beside
        drawn, cell = ax.get_position(), ax.get_position(original=True)
        assert drawn.height == pytest.approx(cell.height, rel=1e-3) and drawn.width == pytest.approx(cell.width, rel=1e-3)
    aspects = [s[0] / s[1] for s in shapes]
    image_h = sum(ax.get_position().height for ax in axs[:, 0]) * H
    assert image_h == pytest.approx(axs[0, 0].get_position().width * W * sum(aspects), rel=1e-3)
    assert H - image_h < .3 * len(shapes)            # what is not image: a title band per row


def test_panels_titles_clear_the_row_above():
    fig, axs = _panels([(52, 70), (70, 30)])
    r = fig.canvas.get_renderer(); H = fig.get_size_inches()[1] * fig.dpi
    for i, row in enumerate(axs):
        ceiling = H if i == 0 else axs[i - 1, 0].get_window_extent(r).y0
        for ax in row:
            box = ax.title.get_window_extent(r)
            assert ax.get_window_extent(r).y1 <= box.y0 and box.y1 <= ceiling


def test_panels_multiline_titles_get_room():
    img = np.zeros((30, 40)); m = img > 0
    fig = show_panels([img, img], [m, m], titles=['first\nsecond line', 'x\ny'])
    fig.draw_without_rendering(); r = fig.canvas.get_renderer()
    assert fig.axes[0].title.get_window_extent(r).y1 <= fig.get_size_inches()[1] * fig.dpi
    assert fig.axes[2].title.get_window_extent(r).y1 <= fig.axes[0].get_window_extent(r).y0


def test_panels_channel_first_and_bad_lengths():
    fig, axs = _panels([(3, 30, 60)])                 # a channel-first RGB image is shown 30 high, 60 wide
    assert axs[0, 0].get_position().height * fig.get_size_inches()[1] == pytest.approx(axs[0, 0].get_position().width * fig.get_size_inches()[0] / 2, rel=1e-3)
    img = np.zeros((8, 8))
    with pytest.raises(ValueError, match='1 masks for 2 images'): show_panels([img, img], [img])
    with pytest.raises(ValueError, match='3 titles for 2 images'): show_panels([img, img], [img, img], titles=['a', 'b', 'c'])
    with pytest.raises(ValueError, match='no images'): show_panels([], [])


def test_panels_real_wide_dsb_images(shared_data):
    "Real 520x696 RGBA DSB images (the wide ones that left white bands): every image fills its panel."
    from PIL import Image
    wide = []
    for d in sorted((shared_data/'dsb2018'/'stage1_train').iterdir()):
        if Image.open(d/'images'/f'{d.name}.png').size == (696, 520): wide.append(d)
        if len(wide) == 2: break
    if not wide: pytest.skip('no 520x696 image in the DSB sample')
    ims = [np.asarray(Image.open(d/'images'/f'{d.name}.png')) for d in wide]
    masks = [sum(np.asarray(Image.open(p)) > 0 for p in (d/'masks').glob('*.png')) > 0 for d in wide]
    fig = show_panels(ims, masks, masks, titles=[d.name[:8] for d in wide])
    fig.draw_without_rendering()
    W, H = fig.get_size_inches()
    for ax in fig.axes:
        assert ax.get_position().height == pytest.approx(ax.get_position(original=True).height, rel=1e-3)
    assert H / W < len(wide) * (520 / 696) / 4 + .3 * len(wide) / W   # the images' own aspect over four panels, plus title bands (square boxes: 0.5)


def _row_of(ims, size=2.4, **kw):
    "One row of different images drawn with panel_axes, each column as wide as its image at one height."
    inv = np.array([im.shape[1] / im.shape[0] for im in ims])
    fig, axs = panel_axes([1 / inv.mean()], len(ims), size, widths=inv, **kw)
    for ax, im in zip(axs[0], ims): ax.imshow(im); ax.set_title('t', fontsize=8); ax.axis('off')
    fig.draw_without_rendering()
    return fig, axs[0]


def test_panel_axes_widths_fit_a_row_of_different_images():
    fig, axs = _row_of([np.zeros((30, 40)), np.zeros((20, 40)), np.zeros((40, 40)), np.zeros((60, 30))])
    heights = [ax.get_position().height for ax in axs]
    assert heights == pytest.approx([heights[0]] * 4, rel=1e-6)          # one height for the row
    for ax in axs:                                                        # and no band around any image
        assert ax.get_position().width == pytest.approx(ax.get_position(original=True).width, rel=1e-3)
        assert ax.get_position().height == pytest.approx(ax.get_position(original=True).height, rel=1e-3)
    fig, axs = panel_axes([.75, .75], 3, 2.4)                            # without widths: equal columns, as before
    assert len({round(ax.get_position().width, 9) for ax in axs.flat}) == 1


def test_panel_axes_suptitle_has_room():
    fig, axs = _row_of([np.zeros((30, 40)), np.zeros((30, 45))], suptitle='first line\nsecond line', suptitle_size=12)
    r = fig.canvas.get_renderer(); sup = fig._suptitle.get_window_extent(r)
    assert sup.y1 <= fig.get_size_inches()[1] * fig.dpi                  # inside the figure
    assert all(sup.y0 >= ax.title.get_window_extent(r).y1 for ax in axs) # and above the panels' titles
    no_title, _ = _row_of([np.zeros((30, 40)), np.zeros((30, 45))])
    assert fig.get_size_inches()[1] > no_title.get_size_inches()[1] + 2 * 12 / 72   # the room is added, not taken from the images


def test_panel_axes_real_isic_row(shared_data):
    "Real ISIC 2018 images of different sizes (4:3, 3:2) side by side: every one fills its panel."
    from medrepro.isic2018.data import seg_items, read_pair, image_size
    items = seg_items(shared_data/'isic2018')
    by_aspect = {}
    for it in items:
        w, h = image_size(it.image); by_aspect.setdefault(round(h / w, 2), it)
    if len(by_aspect) < 2: pytest.skip('fewer than two aspect ratios in the ISIC sample')
    ims = [read_pair(it, max_side=128)[0] for it in list(by_aspect.values())[:4]]
    fig, axs = _row_of(ims, size=3.25)
    for ax in axs:
        assert ax.get_position().height == pytest.approx(ax.get_position(original=True).height, rel=1e-3)
        assert ax.get_position().width == pytest.approx(ax.get_position(original=True).width, rel=1e-3)
