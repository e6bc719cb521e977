"RSNA data helpers: prevalence, co-occurrence (notebook 12), the train/valid/test split, labels, the data folder (notebook 11)."
import numpy as np, pandas as pd, pytest
from medrepro.core import DataError
from medrepro.rsna.data import split_studies, study_labels, rsna_root, LABELS
from medrepro.rsna.eda import label_prevalence, cooccurrence
from medrepro.rsna.sample import write_sample


def _labels():
    return pd.DataFrame({'StudyInstanceUID': list('abcd'), 'patient_overall': [1, 1, 0, 1],
                         'C1': [1, 0, 0, 0], 'C2': [1, 1, 0, 0], 'C3': 0, 'C4': 0, 'C5': 0, 'C6': 0, 'C7': [0, 0, 0, 1]})


def test_prevalence_and_cooccurrence():
    prev = label_prevalence(_labels())
    assert prev.loc['C2', 'positives'] == 2 and prev.loc['patient_overall', 'rate'] == pytest.approx(.75)
    co = cooccurrence(_labels())
    assert co.loc['C1', 'C2'] == 1 and co.loc['C2', 'C2'] == 2 and co.loc['C1', 'C7'] == 0 and (co.values == co.values.T).all()


def test_split_sizes_disjoint_stratified_deterministic():
    lab = pd.DataFrame({'StudyInstanceUID': [f'1.2.{i}' for i in range(2019)], 'patient_overall': ([0] * 52 + [1] * 48) * 20 + [0] * 19})
    sp = split_studies(lab, n_test=120, valid_pct=0.1, n_train=600, seed=0)      # the paper profile's sizes
    assert [len(sp[k]) for k in ('train', 'valid', 'test')] == [540, 60, 120]
    assert not (set(sp['train']) & set(sp['test']) or set(sp['valid']) & set(sp['test']) or set(sp['train']) & set(sp['valid']))
    rate = lab.set_index('StudyInstanceUID')['patient_overall']
    assert abs(rate[sp['test']].mean() - rate.mean()) < .02
    assert sp == split_studies(lab, 120, 0.1, 600, seed=0) and sp != split_studies(lab, 120, 0.1, 600, seed=1)
    small = split_studies(lab.head(12), n_test=.25, valid_pct=.25)
    assert [len(small[k]) for k in ('train', 'valid', 'test')] == [7, 2, 3]
    with pytest.raises(ValueError, match='n_train'): split_studies(lab.head(50), 10, .1, n_train=45)
    with pytest.raises(ValueError, match='n_test'): split_studies(lab.head(3), n_test=2)


def test_labels_root_and_missing(tmp_path):
    root = write_sample(tmp_path/'rsna', n=2, seed=3, size=32, n_slices=16)
    assert rsna_root(root) == root
    lab = pd.read_csv(root/'train.csv')
    uids = lab['StudyInstanceUID'].astype(str).tolist()
    y = study_labels(root, uids[::-1])
    assert y.shape == (2, 8) and np.array_equal(y, lab.set_index(lab['StudyInstanceUID'].astype(str)).loc[uids[::-1], LABELS].to_numpy(np.float32))
    with pytest.raises(DataError, match='no labels'): study_labels(root, ['1.2.3.nope'])
