"""Rewrite constraints.txt from the environment this Python runs in (pip freeze, without the project itself, editable
installs and packages the project no longer needs). Run it with the environment's python after `make test` passed."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DROP = {'medrepro', 'pylibjpeg-rle'}          # the project itself; pydicom decodes RLE on its own

def main():
    lines = subprocess.run([sys.executable, '-m', 'pip', 'freeze', '--exclude-editable'], capture_output=True, text=True, check=True).stdout.splitlines()
    keep = [l for l in lines if '==' in l and ' @ ' not in l and l.split('==')[0].lower().replace('_', '-') not in DROP]
    head = (ROOT/'constraints.txt').read_text().splitlines() if (ROOT/'constraints.txt').exists() else []
    head = [l for l in head if l.startswith('#')]
    (ROOT/'constraints.txt').write_text('\n'.join(head + sorted(keep, key=str.lower)) + '\n')
    print(f'constraints.txt: {len(keep)} pins')

if __name__ == '__main__': main()
