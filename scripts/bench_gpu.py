#!/usr/bin/env python
"""GPU throughput at the papers' settings (issue 23, item 6): for each study, the `paper` profile's network, input size,
batch size and mixed precision (read from params/paper/*.yaml where the profile sets them), a few training steps and a
few evaluation batches on synthetic tensors of that shape; prints images/s (train, eval) and the peak GPU memory
(`torch.cuda.max_memory_allocated`). An "image" is one input item of the model: a CT volume (RSNA 3D CNN), a sequence
of slices (RSNA EfficientNet+GRU), a frame, a photograph.

    .venv/bin/python scripts/bench_gpu.py                                   # every study on cuda, 2 warm-up + 10 timed batches
    .venv/bin/python scripts/bench_gpu.py --device cpu --batches 2 --tiny   # the smoke check (small inputs, batch 2)
    .venv/bin/python scripts/bench_gpu.py --only isic2019_resnet101,echonet --batches 20 --csv build/bench/gpu.csv

The loop is ours (Adam at the profile's learning rate, the study's loss kind, torch.autocast fp16 + GradScaler where
the profile trains in fp16 on a GPU, as fastai's `to_fp16` does through `train.make_learner(fp16='auto')`): it measures
the network and the batch, not fastai's callbacks. ImageNet weights are not needed (throughput does not depend on them).
"""
import argparse, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml

ROOT = Path(__file__).resolve().parents[1]


def paper_params(study, notebook):
    "The `paper` profile's values for `notebook` in params/paper/<study>.yaml (glob keys merged in file order)."
    from fnmatch import fnmatch
    p = yaml.safe_load((ROOT/'params'/'paper'/f'{study}.yaml').read_text())
    out = {}
    for k, v in p.items():
        if fnmatch(notebook, k): out.update(v or {})
    return out


def _rsna_cnn3d():
    from medrepro.rsna.model import Cnn3dStandIn
    p = paper_params('rsna', '15_rsna.model')
    m = Cnn3dStandIn(in_ch=len(p['windows']), widths=tuple(p['widths']), hidden=p['hidden'], padding=p['padding'])
    return m, (len(p['windows']), p['depth'], p['img_size'], p['img_size']), p['bs'], 'auto', 'bce8', p['lr']


def _rsna_effnet_gru():
    from medrepro.rsna.model import EffNetGRU
    p = paper_params('rsna', '16_rsna.train')
    T = max(p['slice_limits'].values())                 # the longest vertebra sequence (C1: 100 slices) is the largest batch
    return EffNetGRU(width=p['effnet_width']), (T, 3, p['img_size'], p['img_size']), p['bs'], 'auto', 'bce1', p['lr_a']


def _echonet():
    from medrepro.echonet.model import echonet_unet
    p = paper_params('echonet', '22_echonet.train')
    return (echonet_unet(widths=tuple(p['widths']), bridge=p['bridge']), (1, p['img_size'], p['img_size']), p['bs'], 'auto',
            'mask', p['lr'])


def _dsb():
    from medrepro.dsb.model import resunet
    p = paper_params('dsb', '33_dsb.train')
    m = resunet(tuple(p['filters']), bn_momentum=p['bn_momentum'], bn_eps=p['bn_eps'], init=p['init'])
    return m, (3, p['img_size'], p['img_size']), p['bs'], p['fp16'], 'mask', p['lr']


def _isic2018():
    from medrepro.isic2018.model import isic_unet
    p = paper_params('isic2018', '41a_isic2018.train')
    return isic_unet(widths=tuple(p['widths'])), (3, p['img_h'], p['img_w']), p['bs'], 'auto', 'mask', p['lr']


def _isic2019(arch):
    def build():
        from medrepro.isic2019.model import torchvision_classifier, isic_resnet
        p = paper_params('isic2019', '44a_isic2019.train')
        m = isic_resnet(widths=tuple(p['widths'])) if arch == 'isic_resnet' else torchvision_classifier(arch, pretrained=False)
        return m, (3, p['img_size'], p['img_size']), p['bs'], 'auto', 'ce8', p['lr']
    return build


SPECS = {'rsna_cnn3d': _rsna_cnn3d, 'rsna_effnet_gru': _rsna_effnet_gru, 'echonet': _echonet, 'dsb': _dsb,
         'isic2018': _isic2018, **{f'isic2019_{a}': _isic2019(a) for a in ('vgg16', 'alexnet', 'isic_resnet', 'resnet101', 'wrn50_2')}}


def tiny_shape(shape):
    "The smoke check's input: the same layout with every spatial side cut to at most 64 and sequences to 4 (same network)."
    if len(shape) == 4 and shape[1] == 3: return (min(shape[0], 4), 3, 64, 64)        # (T, C, H, W) sequence
    if len(shape) == 4: return (shape[0], 32, 64, 64)                               # (C, D, H, W) volume
    return (shape[0], 64, 64 * shape[2] // shape[1])                                 # (C, H, W) image, aspect kept


def loss_and_target(kind, out, n):
    "The study's loss kind on `out` with a fixed synthetic target."
    if kind == 'ce8': return nn.functional.cross_entropy(out.float(), torch.arange(n, device=out.device) % out.shape[1])
    y = (torch.arange(out.numel(), device=out.device).reshape(out.shape) % 3 == 0).float()
    return nn.functional.binary_cross_entropy_with_logits(out.float(), y)


def bench(name, device='cuda', batches=10, warmup=2, bs=None, shape=None, tiny=False, x=None):
    "Train `batches` steps (after `warmup`) and evaluate `batches` batches of study `name` at its paper settings: a dict of figures."
    model, shp, pbs, fp16, kind, lr = SPECS[name]()
    shp, bs = tuple(shape or (tiny_shape(shp) if tiny else shp)), int(bs or pbs)
    dev = torch.device(device)
    amp = dev.type == 'cuda' and fp16 in (True, 'auto')
    model = model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr)
    scaler = torch.amp.GradScaler('cuda', enabled=amp)
    g = torch.Generator().manual_seed(0)
    xb = (torch.as_tensor(x[:bs]) if x is not None else torch.rand((bs, *shp), generator=g)).float().to(dev)
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev); torch.cuda.synchronize(dev)
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
            loss = loss_and_target(kind, model(xb), len(xb))
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        return loss
    def sync(): torch.cuda.synchronize(dev) if dev.type == 'cuda' else None
    for _ in range(warmup): step()
    sync(); t = time.perf_counter()
    for _ in range(batches): loss = step()
    sync(); t_train = time.perf_counter() - t
    if not torch.isfinite(loss.detach().float()): raise RuntimeError(f'{name}: the training loss is not finite ({loss.item()})')
    model.eval()
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
        model(xb); sync(); t = time.perf_counter()
        for _ in range(batches): out = model(xb)
        sync(); t_eval = time.perf_counter() - t
    return dict(study=name, device=str(dev), input='x'.join(map(str, shp)), bs=bs, fp16=amp,
                params_M=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                train_img_s=batches * bs / t_train, eval_img_s=batches * bs / t_eval,
                peak_gpu_GiB=torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == 'cuda' else float('nan'),
                out_shape='x'.join(map(str, out.shape)))


def md_table(df, fmt='{:.1f}'):
    "A Markdown table of `df` (no tabulate in the environment)."
    cell = lambda v: fmt.format(v) if isinstance(v, float) else str(v)
    lines = ['| ' + ' | '.join(map(str, df.columns)) + ' |', '|' + '---|' * len(df.columns)]
    return '\n'.join(lines + ['| ' + ' | '.join(cell(v) for v in r) + ' |' for r in df.itertuples(index=False)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cuda'); ap.add_argument('--batches', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2); ap.add_argument('--bs', type=int, default=None, help='override the profile batch size')
    ap.add_argument('--tiny', action='store_true', help='small inputs (sides <= 64): the CPU smoke check')
    ap.add_argument('--only', default=None, help=f"comma-separated, from: {', '.join(SPECS)}")
    ap.add_argument('--csv', default=None, help='also write the table here')
    a = ap.parse_args(argv)
    if a.device.startswith('cuda') and not torch.cuda.is_available(): sys.exit('no CUDA device here: use --device cpu --tiny --batches 2')
    names = a.only.split(',') if a.only else list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown: sys.exit(f"unknown: {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    if a.device.startswith('cuda'): torch.backends.cudnn.benchmark = True     # as the paper profile's runs (issue 23 item 3)
    hw = torch.cuda.get_device_name() if a.device.startswith('cuda') else f'CPU, {torch.get_num_threads()} threads'
    print(f'# {hw}; torch {torch.__version__}; {a.batches} timed batches after {a.warmup} warm-up; synthetic inputs', flush=True)
    rows = []
    for n in names:
        t = time.perf_counter()
        r = bench(n, a.device, a.batches, a.warmup, a.bs if a.bs else (2 if a.tiny else None), tiny=a.tiny)
        rows.append(r); print(f"{n}: train {r['train_img_s']:.1f} img/s, eval {r['eval_img_s']:.1f} img/s, peak {r['peak_gpu_GiB']:.2f} GiB "
              f"({time.perf_counter() - t:.0f} s with the build)", flush=True)
        if a.device.startswith('cuda'): torch.cuda.empty_cache()
    df = pd.DataFrame(rows)
    print(md_table(df))
    if a.csv: Path(a.csv).parent.mkdir(parents=True, exist_ok=True); df.to_csv(a.csv, index=False)
    return df


if __name__ == '__main__':
    main()
