"""`make weights`: fetch, once, on a machine with internet, the ImageNet weight files the `paper` profiles start from, into
the folder the code reads them from (torch's hub cache, `$TORCH_HOME/hub/checkpoints`), and check their hashes. The
notebooks never download anything: without these files a `pretrained` run stops in its first cells, naming the file.
Copy the folder to an offline machine, or point `TORCH_HOME` at it.

    python scripts/weights.py            # fetch what is missing, check every file
    python scripts/weights.py --check    # offline: check the files that are there, list what is missing (exit 1 if any)
"""
import argparse, hashlib, re, sys
from pathlib import Path

# the weights the papers' settings start from (params/paper): ISIC 2019's pretrained networks and RSNA's EfficientNet
WEIGHTS = {'isic2019 resnet101': 'ResNet101_Weights', 'isic2019 wrn50_2': 'Wide_ResNet50_2_Weights',
           'isic2019 wrn101_2': 'Wide_ResNet101_2_Weights', 'isic2019 vgg16': 'VGG16_Weights', 'isic2019 alexnet': 'AlexNet_Weights',
           'rsna effnet_b0': 'EfficientNet_B0_Weights'}


def checkpoint_dir() -> Path:
    import torch
    return Path(torch.hub.get_dir())/'checkpoints'


def expected_hash(path) -> str:
    "The sha256 prefix torchvision writes into its file names (`resnet101-cd907fc2.pth` -> 'cd907fc2'), or None."
    m = re.search(r'-([0-9a-f]{8,})\.pth$', Path(path).name)
    return m.group(1) if m else None


def file_ok(path) -> bool:
    "True if `path` exists and its sha256 starts with the prefix in its name (torch.hub's own check)."
    path, want = Path(path), expected_hash(path)
    if not path.is_file() or not want: return False
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
    return h.hexdigest().startswith(want)


def urls() -> dict:
    import torchvision.models as tvm
    return {k: getattr(tvm, v).DEFAULT.url for k, v in WEIGHTS.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='download nothing; check the files that are there')
    a = ap.parse_args(argv)
    d, bad = checkpoint_dir(), []
    for what, url in urls().items():
        p = d/Path(url).name
        if not p.exists() and not a.check:
            import torch
            print(f'{what}: downloading {url}', flush=True)
            torch.hub.load_state_dict_from_url(url, model_dir=str(d), progress=True, check_hash=True, weights_only=True)
        ok = file_ok(p)
        print(f"{what:22s} {'ok' if ok else 'MISSING' if not p.exists() else 'BAD HASH'}  {p}")
        if not ok: bad.append(p)
    if bad: print(f'{len(bad)} weight file(s) missing or damaged in {d}' + ('' if a.check else ''), file=sys.stderr)
    return 1 if bad else 0


if __name__ == '__main__': sys.exit(main())
