"DSB EDA helpers: per-image statistics and the modality clustering."
import numpy as np
import pandas as pd
from medrepro.sample import generate
from medrepro.dsb.data import dsb_items, load_item
from medrepro.dsb import eda


def test_image_stats_and_areas(tmp_path):
    items = dsb_items(generate('dsb2018', tmp_path/'dsb', n=4, seed=1))
    img, lab = load_item(items[0])
    s = eda.image_stats(items[0])
    assert (s['height'], s['width']) == img.shape[:2] and s['n_nuclei'] == lab.max()
    assert 0 < s['fg_fraction'] < 0.5 and s['median_area'] > 20
    a = eda.nucleus_areas({items[0].id: lab})
    assert len(a) == lab.max() and a['area'].sum() == (lab > 0).sum()


def test_modalities_from_colour():
    dark = np.full((8, 8, 3), 10, np.uint8); grey = np.full((8, 8, 3), 210, np.uint8)
    purple = np.zeros((8, 8, 3), np.uint8); purple[:] = (200, 140, 210)
    c = eda.colour_stats(dark)
    assert c['saturation'] == 0 and abs(c['brightness'] - 10 / 255) < 1e-6 and eda.colour_stats(purple)['saturation'] > 0.2
    rows = [eda.colour_stats(im) for im in [dark] * 6 + [grey] * 3 + [purple] * 4]
    rows = [dict(r, brightness=r['brightness'] + 0.01 * i) for i, r in enumerate(rows)]   # some spread inside each kind
    m = eda.modalities(pd.DataFrame(rows), k=4)
    assert list(m) == ['fluorescence'] * 6 + ['brightfield'] * 3 + ['histology'] * 4
