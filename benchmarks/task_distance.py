"""Do the votes help utility more on a task-aware distance? ``synth --target`` runs whose vote distance weighs
each column by 1 + a · MI(column, target) / max MI, against a = 0 (the default distance).

    nice -n 5 python -m benchmarks.task_distance --tables uci_adult,aer_cps1988,ecdat_hi,modeldata_lending_club \
        --a 0,2,6 --eps 1 --seeds 2

The mutual information is read off the REAL train rows on the reference scorer's bins: an upper bound on what a
DP estimate of the same weights (e.g. from the task pairs ``--target`` already releases) could give, so a null
result here settles the question without spending budget. Split, public schema and scoring as in
``benchmarks/corpus.py`` (``../shared/bench/score_table.py``: 2-way / 3-way TVD, TSTR AUC).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.corpus import split, tables  # noqa: E402
from benchmarks.one_way_floor import _scorer  # noqa: E402
from pe_tabular.measure.information import mutual_information  # noqa: E402
from pe_tabular.tables.schema import Schema  # noqa: E402
from pe_tabular.tables.synthesizer import PESynthesizer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", required=True, help="comma list of corpus table names (or uci_adult)")
    ap.add_argument("--a", default="0,2,6", help="weight strengths a")
    ap.add_argument("--eps", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--work", default="/tmp/task-bench")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    st, work = _scorer(), Path(a.work)
    want = set(a.tables.split(","))
    for t in [t for t in tables() if t["name"] in want]:
        train_csv, test_csv = split(t, work)
        schema_path = work / "schemas" / f"{t['name']}.json"
        if not schema_path.exists():
            schema_path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pe_tabular.cli", "schema", "infer", str(train_csv), "--label",
                            t["target"], "--out", str(schema_path), "--quiet"], check=True, cwd=ROOT)
        train, test = pd.read_csv(train_csv, low_memory=False), pd.read_csv(test_csv, low_memory=False)
        schema, tgt = Schema.load(schema_path), t["target"]
        rb = st.Binner(train)(train)
        mi = {c: mutual_information(pd.crosstab(rb[c], rb[tgt]).to_numpy(float)) for c in train.columns if c != tgt}
        top = max(mi.values()) or 1.0
        for strength in (float(x) for x in a.a.split(",")):
            weights = {c: 1 + strength * m / top for c, m in mi.items()} if strength > 0 else None
            r = []
            for seed in range(a.seeds):
                syn = PESynthesizer(schema, epsilon=a.eps, seed=seed, target=tgt, weights=weights).fit(train).sample()
                buf = io.StringIO()
                syn.to_csv(buf, index=False)
                buf.seek(0)  # through CSV, as the scorer reads every other method's output
                sc = st.score(train, pd.read_csv(buf, low_memory=False), target=tgt, test=test)
                r.append((sc["tvd2"], sc["tvd3"], sc["tstr_auc"]))
            m = np.array(r, float).mean(0)
            print(f"| {t['name']} | {a.eps:g} | {strength:g} | {m[0]:.4f} | {m[1]:.4f} | {m[2]:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
