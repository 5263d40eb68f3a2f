"""Published numbers: the DMTNet paper's Table 1, the one copy the leaderboard and the complexity check read.

The table is ``published_table1.csv`` beside this module (Canon DP test set): per network, PSNR, SSIM and MAE on
the indoor, outdoor and combined images, then parameters (millions) and GMACs at 1680 x 1120 (the paper's "Flops"
column); an empty cell is one the paper leaves out. IFAN's numbers are its own 8-bit ones (reference.md,
section 3); the paper does not state the others' protocol.
"""

import csv
from pathlib import Path

TABLE1_FILE = Path(__file__).resolve().parent / 'published_table1.csv'
GROUPS = ('indoor', 'outdoor', 'combined')
METRICS = ('PSNR', 'SSIM', 'MAE')


def optional_float(text: str) -> float | None:
    return float(text) if text else None


def read_table1(path=TABLE1_FILE) -> list[tuple]:
    """Rows ``(name, indoor, outdoor, combined, params, gmacs)``, each group a (PSNR, SSIM, MAE) tuple."""
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    return [
        (
            row['network'],
            *[tuple(float(row[f'{group} {metric}']) for metric in METRICS) for group in GROUPS],
            optional_float(row['params (M)']),
            optional_float(row['GMACs']),
        )
        for row in rows
    ]


PUBLISHED_TABLE1 = read_table1()

# Each DMTNet variant's (params in millions, GMACs at 1680 x 1120), from the table above.
DMTNET_COMPLEXITY = {
    name.removeprefix('DMTNet-'): (params, gmacs)
    for name, *_, params, gmacs in PUBLISHED_TABLE1
    if name.startswith('DMTNet-')
}
