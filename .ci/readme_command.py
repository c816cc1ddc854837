"""Print the N-th fenced shell block of README.md, so CI runs what users run."""

import re
import sys
from pathlib import Path

readme = Path(__file__).resolve().parent.parent / "README.md"
blocks = re.findall(r"^```(?:bash|sh|console)?\n(.*?)^```", readme.read_text(), re.S | re.M)
index = int(sys.argv[1]) - 1
lines = [ln for ln in blocks[index].splitlines() if ln.strip() and not ln.startswith("#")]
sys.stdout.write(" && ".join(ln.rstrip("\\ ").strip() for ln in lines) + "\n")
