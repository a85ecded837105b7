"""Digits (MNIST) benchmark: class-conditional PE with the procedural renderers vs the renderers alone,
rendering throughput, the stroke+font mixture vs each alone, scored by our evaluator and by the
reference scorer ../shared/bench/score_mnist.py; published DPImageBench numbers quoted beside.

    nice -n 10 python benchmarks/digits.py --stages throughput,alone,pe,mix --write

Stages (results cached in WORK/results.json, so stages can run separately and be re-assembled):
  throughput  images/s of each renderer (numba threads = cores), 60k genomes, best of 3
  alone       the renderers alone (no private data): stroke and font, both placements
  pe          stroke renderer, eps = 1 and eps = 10 (delta = 1e-5), private = the 60k MNIST train set
              (pe1 / pe10: one of them)
  mix         font renderer and the stroke+font mixture at eps = 1 (mixfont / mixmix: one of them)
--write appends the '## Digits (MNIST)' section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
MNIST = SHARED / "data" / "mnist"
SCORER = SHARED / "bench" / "score_mnist.py"

from pe_tabular.io_utils import atomic_write_json, atomic_write_text  # noqa: E402
from renderers.digits.evaluation import evaluate, save_grid  # noqa: E402
from renderers.digits.io import load_mnist, write_npz  # noqa: E402
from renderers.digits.synth import DigitsConfig, render_baseline, synthesize  # noqa: E402

# PE settings per budget, chosen on a held-out slice of MNIST train (docs/digits.md, "Tuning")
PE_CONFIGS = {
    1.0: DigitsConfig(iterations=10, population=40000),
    10.0: DigitsConfig(iterations=20, population=40000),
}
PUBLISHED = [  # DPImageBench (Gong et al., CCS 2025) 'Main Results', MNIST accuracy eps=1 / eps=10
    ("PE (foundation-model API)", 27.9, 32.7), ("DP-MERF", 80.3, 81.3), ("DPDM", 89.2, 97.7),
    ("PrivImage", 94.0, 97.8), ("DP-FETA", 95.6, 98.1),
]


def log(msg: str) -> None:
    print(f"[digits-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Store:
    """results.json shared by concurrently running stages: every put re-reads and merges under a lock."""

    def __init__(self, work: Path):
        self.path = work / "results.json"
        self.lock = work / "results.lock"

    @property
    def data(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def put(self, key: str, value) -> None:
        import fcntl

        with open(self.lock, "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            d = self.data
            d[key] = value
            atomic_write_json(self.path, d)


def score_reference(npz: Path, method: str, eps, wall: float | None, work: Path) -> dict:
    """Run the reference scorer (one thread) on an .npz; returns its JSON record."""
    cmd = [sys.executable, str(SCORER), str(npz), "--method", method, "--eps", str(eps), "--quiet",
           "--json-out", str(work / "score_mnist.jsonl")]
    if wall is not None:
        cmd += ["--wall-s", f"{wall:.1f}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def score_all(name: str, images, labels, eps, wall, work: Path, store: Store, extra: dict, skip_ref: bool) -> None:
    npz = work / f"{name}.npz"
    write_npz(npz, images, labels)
    save_grid(work / f"{name}.png", images, labels, 16, rng=np.random.default_rng(0))
    test, train = load_mnist(MNIST, "test"), load_mnist(MNIST, "train")
    t0 = time.time()
    ev = evaluate(images, labels, test, real_train=train, threads=2)
    log(f"{name}: own evaluator acc {ev['acc']:.4f} FD {ev['fd']:.1f} ({time.time() - t0:.0f}s)")
    rec = {"name": name, "eps": eps, "wall_s": wall, "acc": ev["acc"], "fd": ev["fd"],
           "per_class_acc": ev["per_class_acc"], **extra}
    if not skip_ref:
        ref = score_reference(npz, name, eps, wall, work)
        rec.update(ref_acc=ref["acc"], ref_fd=ref["fd"])
        log(f"{name}: reference scorer acc {ref['acc']:.4f} FD {ref['fd']:.1f}")
    store.put(name, rec)


def stage_throughput(store: Store) -> None:
    import numba

    from renderers.digits.fonts import FontRenderer
    from renderers.digits.stroke import StrokeRenderer

    res, cpu = {}, {}
    for name, r in [("stroke/mnist", StrokeRenderer("mnist")), ("stroke/free", StrokeRenderer("free")),
                    ("font/free", FontRenderer("free")), ("font/mnist", FontRenderer("mnist"))]:
        rng = np.random.default_rng(0)
        g = np.concatenate([r.random(6000, label=d, rng=rng).genome for d in range(10)])
        r.render(g[:100])  # compile
        runs = [_timed(r.render, g) for _ in range(3)]
        res[name] = round(len(g) / min(w for w, _ in runs))
        cpu[name] = round(len(g) / min(c for _, c in runs))
        log(f"throughput {name}: {res[name]} images/s wall, {cpu[name]} images per CPU-second")
    store.put("throughput", {"images_per_s": res, "images_per_cpu_s": cpu, "numba_threads": numba.get_num_threads(),
                             "n": 60000, "load_avg_1min": os.getloadavg()[0]})


def _timed(f, *a) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process over all threads)."""
    t, c = time.perf_counter(), time.process_time()
    f(*a)
    return time.perf_counter() - t, time.process_time() - c


def stage_alone(store: Store, work: Path, skip_ref: bool, which: list[str]) -> None:
    for item in which:
        renderer, placement = item.split("/")
        if f"alone-{renderer}-{placement}" in store.data:
            log(f"alone-{renderer}-{placement}: cached in {store.path}")
            continue
        t0 = time.time()
        x, y = render_baseline(DigitsConfig(renderer=renderer, placement=placement), np.random.default_rng(0), 60000)
        wall = time.time() - t0
        score_all(f"alone-{renderer}-{placement}", x, y, "inf (no private data)", wall, work, store,
                  {"renderer": renderer, "placement": placement}, skip_ref)


def run_pe(name: str, cfg: DigitsConfig, eps: float, store: Store, work: Path, skip_ref: bool, n_private: int,
           seed: int = 0) -> None:
    x, y = load_mnist(MNIST, "train")
    x, y = x[:n_private], y[:n_private]
    t0 = time.time()
    res = synthesize(x, y, eps, 1e-5, cfg, np.random.default_rng(seed))
    wall = time.time() - t0
    log(f"{name}: PE done in {wall:.0f}s, eps={res.ledger.epsilon:.4f}")
    res.ledger.save(work / f"{name}.ledger.json")
    shares = {str(k): v for k, v in res.label_shares.items()}
    src = {str(s): float(np.mean(res.source == s)) for s in np.unique(res.source)}
    score_all(name, res.images, res.labels, eps, wall, work, store,
              {"config": asdict(cfg), "epsilon_ledger": res.ledger.epsilon, "n_private": len(y),
               "source_share_output": src, "label_shares": shares,
               "history": [{k: h[k] for k in ("iteration", "sigma", "ess", "above_threshold")} for h in res.history]},
              skip_ref)


def write_results(store: Store, cmd: str) -> None:
    d = store.data
    lines = ["", "## Digits (MNIST)", "",
             f"Command: `{cmd}`  ",
             f"Machine: {_cpu()}, {os.cpu_count()} cores (shared with other jobs); python {platform.python_version()}, "
             f"{_versions()}.  ",
             "Private data: the 60,000 MNIST training images; accuracy on the real 10,000 test images of a CNN "
             "trained on 60,000 synthetic images. 'own' = renderers.digits.evaluation (conv16-conv32-fc128, 4 "
             "epochs, torch CPU); 'ref' = ../shared/bench/score_mnist.py (conv8-conv16-fc128, 3 epochs, one "
             "thread). FD = Fréchet distance "
             "on a fixed network's 128-d features (own / ref networks differ; NOT comparable with Inception FID). "
             "delta = 1e-5. Wall = generation time (PE incl. encoding and voting), not scoring.", ""]
    rows = [k for k in d if k.startswith(("alone-", "pe-", "mix-"))]
    if rows:
        lines += ["| run | renderer | eps | acc own | acc ref | FD own | FD ref | wall (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for k in rows:
            r = d[k]
            ren = r.get("renderer") or r.get("config", {}).get("renderer", "")
            pl = r.get("placement") or r.get("config", {}).get("placement") or "default"
            lines.append(f"| {k} | {ren}/{pl} | {r['eps']} | {r['acc']:.4f} | {_f(r.get('ref_acc'))} | "
                         f"{r['fd']:.1f} | {_f(r.get('ref_fd'), 1)} | {r['wall_s']:.0f} |")
        lines.append("")
    lines += ["Published DPImageBench accuracy on MNIST (different, larger classifiers trained 50 epochs on GPU with "
              "noisy-validation epoch selection; not the same yardstick):", "",
              "| method | eps=1 | eps=10 |", "|---|---|---|"]
    lines += [f"| {m} | {a:.1f} | {b:.1f} |" for m, a, b in PUBLISHED]
    lines.append("")
    if "throughput" in d:
        t = d["throughput"]
        lines += [f"Rendering throughput ({t['n']} genomes → 28×28 uint8, numba threads = {t['numba_threads']}, best "
                  f"of 3, 1-min load average {t['load_avg_1min']:.1f} on {os.cpu_count()} cores): wall-clock "
                  + ", ".join(f"{k} {v:,} images/s" for k, v in t["images_per_s"].items())
                  + "; per CPU-second (independent of the other jobs' load; ×2 = two free cores) "
                  + ", ".join(f"{k} {v:,}" for k, v in t["images_per_cpu_s"].items()) + ".", ""]
    for k in rows:
        if "config" in d[k]:
            c = d[k]["config"]
            lines.append(f"- {k}: iterations {c['iterations']}, population {c['population']}, degrees "
                         f"{c['degree_start']}→{c['degree_end']}, k {c['k']}, threshold {c['threshold']}, lookahead "
                         f"{c['lookahead']}, encoder {c['encoder']}, final degree {c['final_degree']}, label budget "
                         f"{c['label_budget']}; ledger eps {d[k]['epsilon_ledger']:.4f}"
                         + (f"; output source shares {d[k]['source_share_output']}" if c["renderer"] == "mix" else ""))
    lines.append("")
    path = ROOT / "benchmarks" / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    atomic_write_text(path, old.rstrip("\n") + "\n" + "\n".join(lines))
    log(f"appended the Digits section to {path}")


def _f(v, nd: int = 4) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001
        return platform.processor() or "unknown CPU"


def _versions() -> str:
    import numba
    import torch

    return f"numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/pe-digits-bench")
    ap.add_argument("--stages", default="throughput,alone,pe,mix")
    ap.add_argument("--n-private", type=int, default=60000)
    ap.add_argument("--skip-ref", action="store_true", help="do not call the reference scorer")
    ap.add_argument("--alone", default="stroke/free,font/free,stroke/mnist,font/mnist",
                    help="renderer/placement pairs for the 'alone' stage")
    ap.add_argument("--write", action="store_true", help="append the section to benchmarks/RESULTS.md")
    a = ap.parse_args()
    if not MNIST.exists():
        print(f"digits benchmark needs {MNIST}", file=sys.stderr)
        return 2
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work)
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    if "throughput" in stages:
        stage_throughput(store)
    if "alone" in stages:
        stage_alone(store, work, a.skip_ref, [x for x in a.alone.split(",") if x])
    for eps in (1.0, 10.0):
        if "pe" in stages or f"pe{eps:g}" in stages:
            c = PE_CONFIGS[eps]
            run_pe(f"pe-stroke-eps{eps:g}-T{c.iterations}-N{c.population // 1000}k", c, eps, store, work, a.skip_ref,
                   a.n_private)
    for ren in ("font", "mix"):
        if "mix" in stages or f"mix{ren}" in stages:
            c = replace(PE_CONFIGS[1.0], renderer=ren)
            run_pe(f"mix-{ren}-eps1-T{c.iterations}-N{c.population // 1000}k", c, 1.0, store, work, a.skip_ref,
                   a.n_private)
    if a.write:
        write_results(store, "nice -n 10 python benchmarks/digits.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
