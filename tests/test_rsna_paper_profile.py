"The `paper` profile sets what the RSNA paper states, and the notebooks say the same numbers."
import json
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT/'params'/'paper'/'rsna.yaml').read_text())
# what the paper states (Proyecto 2, Discusión): 600 training and 120 test patients; EfficientNet + GRU on 224x224 JPGs,
# one model per vertebra, 10 epochs, at most these many images per vertebra
STATED = dict(n_train=600, n_test=120, img_size=224, epochs_a=10,
              slice_limits={'C1': 100, 'C2': 25, 'C3': 50, 'C4': 55, 'C5': 25, 'C6': 80, 'C7': 75})


def _md(nb):
    return '\n'.join(''.join(c['source']) for c in json.loads((ROOT/'nbs'/nb).read_text())['cells'] if c['cell_type'] == 'markdown')


def test_split_sizes_in_every_notebook_that_splits():
    split = PAPER['1[4-7]*']
    assert split['n_train'] == STATED['n_train'] and split['n_test'] == STATED['n_test']


def test_effnet_gru_settings():
    nb16 = PAPER['16_rsna.train']
    assert nb16['img_size'] == STATED['img_size'] and nb16['epochs_a'] == STATED['epochs_a']
    assert nb16['slice_limits'] == STATED['slice_limits'] and 'jpg' in nb16['routes']
    assert sorted(nb16['vertebrae']) == ['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7']


def test_notebooks_document_the_same_values():
    lim = ', '.join(f'{v} {n}' for v, n in STATED['slice_limits'].items())
    assert lim in _md('16_rsna.train.ipynb')
    assert '224x224' in _md('16_rsna.train.ipynb') and '10 epochs' in _md('16_rsna.train.ipynb')
    assert '600' in _md('11_rsna.data.ipynb') and '120' in _md('11_rsna.data.ipynb')
    assert '0.175' in _md('17_rsna.evaluate.ipynb') and '42/141' in _md('17_rsna.evaluate.ipynb')
