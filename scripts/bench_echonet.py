"""EchoNet speed (issue item 9): frames/s of video decoding, project loader vs a plain per-frame OpenCV loop, and
training images/s of the U-Net; frames are decoded once and cached with medrepro.core.cached.

    .venv/bin/python scripts/bench_echonet.py [--data-dir DIR] [--size 64] [--widths 8,16,32,64,128] [--steps 20]
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np, cv2, torch
from medrepro.core import get_device, seed_everything
from medrepro.data import dataset_path
from medrepro.data import dataloaders
from medrepro.echonet.data import echo_index, read_video, traced_arrays, video_frames, split_frames, frame_sets
from medrepro.nets import MaskLoss
from medrepro.nets import n_params
from medrepro.echonet.model import EchoUNet


def plain_loop(path):
    "What a first notebook would write: one VideoCapture, read() frame by frame, BGR to grey, list to array."
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok: break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    cap.release()
    return np.stack(frames)


def rate(fn, paths):
    "Frames per second of fn over every path (one pass)."
    t, n = time.perf_counter(), 0
    for p in paths: n += len(fn(p))
    return n / (time.perf_counter() - t), n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-dir', default=None); ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--widths', default='8,16,32,64,128'); ap.add_argument('--bs', type=int, default=8)
    ap.add_argument('--steps', type=int, default=20); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--device', default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(a.data_dir) if a.data_dir else dataset_path('echonet')
    data = echo_index(root, on_error='skip')
    paths = [data.video_path(n) for n in data.frames.FileName.unique()]
    plain, n = rate(plain_loop, paths)
    proj, _ = rate(read_video, paths)
    with tempfile.TemporaryDirectory() as cache:
        first, _ = rate(lambda p: video_frames(p, 112, cache_dir=cache), paths)
        again, _ = rate(lambda p: video_frames(p, 112, cache_dir=cache), paths)
        t = time.perf_counter(); arr = traced_arrays(data, a.size, cache_dir=cache); t_tr = time.perf_counter() - t
        t = time.perf_counter(); arr = traced_arrays(data, a.size, cache_dir=cache); t_tr2 = time.perf_counter() - t
    print(f'{root}: {len(paths)} videos, {n} frames')
    print(f'decode, plain per-frame cv2 loop : {plain:8.0f} frames/s')
    print(f'decode, project read_video       : {proj:8.0f} frames/s (same OpenCV decoder, plus the checks)')
    print(f'video_frames, first call (decode + resize + write cache): {first:8.0f} frames/s')
    print(f'video_frames, cached                                      : {again:8.0f} frames/s')
    print(f'traced_arrays ({len(data.frames)} traced frames at {a.size}px): {t_tr:.2f} s first, {t_tr2 * 1000:.1f} ms cached')

    dev = get_device(a.device)
    seed_everything(0)
    widths = tuple(int(w) for w in a.widths.split(','))
    sp = split_frames(data.frames, 'video')
    dls = dataloaders(*frame_sets(arr["x"], arr["y"], sp), bs=a.bs, valid_bs=2 * a.bs, device=dev)
    model, loss = EchoUNet(widths=widths).to(dev), MaskLoss('bce')
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    seen, t, step = 0, None, 0
    while step < a.steps + 2:
        for xb, yb in dls.train:
            if step == 2: t = time.perf_counter(); seen = 0           # two warm-up steps
            opt.zero_grad(); l = loss(model(xb), yb); l.backward(); opt.step()
            seen += len(xb); step += 1
            if step >= a.steps + 2: break
    if dev.type == 'cuda': torch.cuda.synchronize()
    ips = seen / (time.perf_counter() - t)
    hw = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU, {torch.get_num_threads()} thread(s)'
    print(f'training: U-Net {widths} ({n_params(model) / 1e6:.2f} M parameters) at {a.size}px, batch {a.bs}: {ips:.1f} images/s on {hw}')


if __name__ == '__main__': main()
