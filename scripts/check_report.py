#!/usr/bin/env python
"""Open the report index in headless Chromium: fail on a broken image or link, save a screenshot.

    python scripts/check_report.py [reports/index.html] [--screenshot reports/index.png]

Local links and images must exist (and a `#section` link must name an id in the target page); then Chromium loads
the page and a script in it lists the images that did not load. Without Chromium (Debian: `apt-get install
chromium`) the browser part is skipped with a message, and the exit code is that of the file checks.
"""
import argparse, re, shutil, subprocess, sys, tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse


class Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.refs = []
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if (tag, k) in (('a', 'href'), ('img', 'src'), ('link', 'href'), ('script', 'src')) and v: self.refs.append((tag, v))


def broken_links(index: Path) -> list:
    "Local hrefs/srcs of `index` that point at a missing file or a missing #id."
    p = Links(); p.feed(index.read_text(encoding='utf-8'))
    bad, ids = [], {}
    for tag, ref in p.refs:
        u = urlparse(ref)
        if u.scheme in ('http', 'https', 'mailto', 'data'): continue
        target = (index.parent/unquote(u.path)).resolve() if u.path else index
        if not target.exists(): bad.append(f'{tag} -> {ref}: no such file'); continue
        if u.fragment and target.suffix == '.html':
            if target not in ids: ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text(encoding='utf-8', errors='replace')))
            if unquote(u.fragment) not in ids[target]: bad.append(f'{tag} -> {ref}: no id {u.fragment!r} in {target.name}')
    return bad


def chromium() -> str:
    return next((c for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)


def browser_check(index: Path, screenshot: Path, exe: str) -> list:
    "Load the page in headless Chromium; the images it could not show. Saves a screenshot."
    with tempfile.TemporaryDirectory() as prof:
        base = [exe, '--headless', '--no-sandbox', '--disable-gpu', f'--user-data-dir={prof}', '--virtual-time-budget=15000',
                '--allow-file-access-from-files', '--hide-scrollbars']
        dom = subprocess.run([*base, '--dump-dom', index.resolve().as_uri()], capture_output=True, text=True, timeout=180).stdout
        subprocess.run([*base, f'--screenshot={screenshot.resolve()}', '--window-size=1280,2000', index.resolve().as_uri()],
                       capture_output=True, timeout=180)
    m = re.search(r'<body[^>]*data-broken="([^"]*)"', dom)
    if m is None: return ['the page did not finish loading in Chromium (no data-broken attribute on <body>)']
    return [f'image did not load: {s}' for s in m.group(1).split('|') if s]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('index', nargs='?', default='reports/index.html')
    ap.add_argument('--screenshot', default=None, help='PNG to write (default: index.png beside the index)')
    a = ap.parse_args(argv)
    index = Path(a.index)
    if not index.exists(): sys.exit(f'{index}: no such report index (run make reports first)')
    problems = broken_links(index)
    exe = chromium()
    if exe:
        shot = Path(a.screenshot or index.with_suffix('.png'))
        problems += browser_check(index, shot, exe)
        print(f'chromium: loaded {index}; screenshot {shot}')
    else: print('chromium not installed: browser check skipped (apt-get install chromium); file links checked')
    for p in problems: print('BROKEN', p)
    print(f'{index}: {len(problems)} problem(s)')
    return 1 if problems else 0


if __name__ == '__main__': sys.exit(main())
