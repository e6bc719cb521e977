"`make weights` checks each ImageNet weight file against the sha256 prefix in its name (tested on small local files, offline)."
import hashlib, importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location('weights', Path(__file__).resolve().parents[1]/'scripts'/'weights.py')
weights = importlib.util.module_from_spec(spec); spec.loader.exec_module(weights)


def test_hash_check_on_a_small_local_file(tmp_path):
    data = b'not really a network'
    good = tmp_path/f'tiny-{hashlib.sha256(data).hexdigest()[:8]}.pth'; good.write_bytes(data)
    assert weights.expected_hash(good) == hashlib.sha256(data).hexdigest()[:8] and weights.file_ok(good)
    good.write_bytes(data + b'!')                                   # damaged in transfer
    assert not weights.file_ok(good)
    assert not weights.file_ok(tmp_path/'missing-0123abcd.pth') and weights.expected_hash('plain.pth') is None


def test_check_mode_names_missing_files_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    assert weights.main(['--check']) == 1                          # nothing cached here: every file listed, nothing fetched
    out = capsys.readouterr().out
    assert out.count('MISSING') == len(weights.WEIGHTS) and 'resnet101' in out and not list(tmp_path.rglob('*.pth'))
