"""Appendix B: data-parallel training (DistributedDataParallel, gloo on CPU) with ganlib's one training loop.

Two processes at 64 samples each must train exactly like one process at 128: the same
gradients, losses and parameters, within float32 tolerance. The processes are started once
per module (``torch.multiprocessing.spawn``, a free port on 127.0.0.1) and run every
distributed scenario; the tests below then compare their results with single-process runs.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from ganlib import distributed as gdist
from ganlib.data import Batches
from ganlib.models import discriminator, generator
from ganlib.cli.train import main as main_train
from ganlib.train import CHECKPOINT, HISTORY, History, TrainConfig, load_checkpoint, train_gan

ROOT = Path(__file__).resolve().parents[1]
K = 3  # steps of the distributed run; the resumed runs go on to 2K
BATCH = 128  # global batch: 2 ranks of 64


def dataset() -> torch.Tensor:
    return torch.randn(1024, 2, generator=torch.Generator().manual_seed(1)) * 0.5 + 1.0


def models(batchnorm: bool = False):
    torch.manual_seed(0)
    G, D = generator(2, 2, hidden=(16, 16)), discriminator(2, hidden=(16, 16))
    if batchnorm:  # BatchNorm in D: its statistics are per rank unless synchronised
        D.insert(1, nn.BatchNorm1d(16))
    return G, D


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": K, "batch_size": BATCH, "device": "cpu", "lr_g": 1e-3, "lr_d": 1e-3, **kw})


def run(steps=K, batchnorm=False, rank=0, world=1, resume=None, out=None):
    """One training run; returns its history, final parameters and the gradients after each step."""
    G, D = models(batchnorm)
    grads = []

    def record(step, G, D, history):  # after the G step: G's and D's (last D step's) averaged gradients
        grads.append([p.grad.clone() for p in [*G.parameters(), *D.parameters()]])

    data = Batches(dataset(), BATCH, seed=3, rank=rank, world_size=world)
    h = train_gan(G, D, data, config(steps=steps, out=out, distributed=world > 1), callbacks=[record], resume=resume)
    return {"history": h.rows, "params": [p.detach().clone() for p in [*G.parameters(), *D.parameters()]],
            "grads": grads}


def partial_freeze(find_unused: bool) -> str:
    """What DDP says when a backward pass reaches only some of a wrapped module's parameters."""
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    D = discriminator(2, hidden=(8,))
    Dw = DistributedDataParallel(D, find_unused_parameters=find_unused)
    try:
        for _ in range(2):
            Dw(torch.randn(4, 2)).mean().backward()  # every parameter gets a gradient
            D[0].weight.requires_grad_(False)  # then only some of them do
            Dw(torch.randn(4, 2)).mean().backward()
            D[0].weight.requires_grad_(True)
    except RuntimeError as e:
        return str(e).splitlines()[0]
    return "ok"


def native_threads() -> list[str] | None:
    """Names of this process's threads, C++ ones included (Linux: /proc); None elsewhere."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    return sorted((t / "comm").read_text().strip() for t in tasks.iterdir())


def worker(rank: int, world: int, port: int, tmp: str) -> None:
    """One rank: every distributed scenario, its results saved as tmp/NAME_rankR.pt."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    tmp = Path(tmp)
    try:
        results = {
            # each rank names its own folder: only rank 0's may receive files
            "equiv": run(rank=rank, world=world, out=tmp / f"ddp_rank{rank}"),
            "from_single": run(steps=2 * K, rank=rank, world=world, resume=tmp / "single" / CHECKPOINT),
            "batchnorm": run(steps=1, batchnorm=True, rank=rank, world=world),
        }
        results["seen"] = (gdist.rank(), gdist.world_size())
        # a NaN on rank 1 only (its rows of the global batch): every rank stops at the same step
        def nan_on_odd_rows(n):
            x = torch.randn(n, 2)
            x[1::2] = float("nan")
            return x

        try:
            train_gan(*models(), nan_on_odd_rows, config(distributed=True))
            results["nan"] = None
        except FloatingPointError as e:
            results["nan"] = str(e)
        # rank 1 runs out of time after its first step, rank 0 has steps left: both stop together
        own = config(steps=50, distributed=True, minutes=1e-6 if rank == 1 else None)
        results["minutes"] = len(train_gan(*models(), lambda n: torch.randn(n, 2), own))
        results["partial"] = {fup: partial_freeze(fup) for fup in (True, False)}  # last: False breaks a DDP
        results["threads_joined"] = native_threads()
        gdist.teardown()
        results["threads_left"] = native_threads()
        torch.save(results, tmp / f"rank{rank}.pt")
    finally:
        gdist.teardown()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    single = run(out=tmp / "single")  # K steps at batch 128, checkpoint for the distributed resume
    ref = run(steps=2 * K)  # 2K uninterrupted steps at batch 128
    mp.spawn(worker, args=(2, gdist.free_port(), str(tmp)), nprocs=2, join=True)
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return {"tmp": tmp, "single": single, "ref": ref, "ranks": ranks}


def close(a, b, rtol=1e-4, atol=1e-6):
    return all(torch.allclose(x, y, rtol=rtol, atol=atol) for x, y in zip(a, b, strict=True))


def test_two_ranks_of_64_get_the_gradients_and_parameters_of_one_process_at_128(runs):
    single, ddp = runs["single"], [rk["equiv"] for rk in runs["ranks"]]
    for r in range(2):
        assert len(ddp[r]["grads"]) == K
        for step in range(K):
            assert close(ddp[r]["grads"][step], single["grads"][step]), f"rank {r}, step {step + 1}"
        assert close(ddp[r]["params"], single["params"], rtol=1e-5, atol=1e-6)
    # the ranks hold bit-identical models (the gradients are all-reduced before each step)
    assert all(torch.equal(a, b) for a, b in zip(ddp[0]["params"], ddp[1]["params"]))
    # the parameters did move: the comparison is not between two untouched initialisations
    G0, D0 = models()
    start = [p.detach() for p in [*G0.parameters(), *D0.parameters()]]
    assert max((a - b).abs().max().item() for a, b in zip(ddp[0]["params"], start)) > 1e-3
    # the logged losses are the global batch's: the same on every rank and as in one process
    for col in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
        one = torch.tensor([row[col] for row in single["history"]])
        for r in range(2):
            assert torch.allclose(torch.tensor([row[col] for row in ddp[r]["history"]]), one, rtol=1e-4), col


def test_every_rank_stops_at_the_same_step(runs):
    ranks = runs["ranks"]
    assert [rk["seen"] for rk in ranks] == [(0, 2), (1, 2)] and (gdist.rank(), gdist.world_size()) == (0, 1)
    for rk in ranks:  # rank 0 saw clean data, yet stops at step 1 like rank 1, with the same message
        assert rk["nan"] is not None and rk["nan"].startswith("training stopped at step 1:")
    assert ranks[0]["nan"] == ranks[1]["nan"]
    assert [rk["minutes"] for rk in ranks] == [1, 1]  # without one shared decision rank 0 would wait forever


def test_a_partly_frozen_module_needs_find_unused_parameters(runs):
    # ganlib freezes all of D in the G step (DDP then has nothing to wait for: the runs above finish);
    # freezing only part of a wrapped module breaks DDP's bookkeeping unless it searches the graph
    for rk in runs["ranks"]:
        assert rk["partial"][True] == "ok"
        assert rk["partial"][False].startswith("Expected to have finished reduction in the prior iteration")


def test_teardown_ends_the_process_groups_threads(runs):
    # gloo's threads must end in teardown, while Python runs: one still alive when the interpreter shuts
    # down may release its last collective then and abort the process ("terminate called without an
    # active exception"). They outlived teardown when a torch module imported after joining (through
    # DDP) kept the group alive; ganlib.distributed.setup imports it first.
    for rk in runs["ranks"]:
        if rk["threads_left"] is None:
            pytest.skip("thread names are read from /proc (Linux)")
        assert any("gloo" in t for t in rk["threads_joined"]), rk["threads_joined"]  # the check can see them
        assert not any("gloo" in t for t in rk["threads_left"]), rk["threads_left"]


def test_batchnorm_statistics_per_rank_break_the_equivalence(runs):
    single = run(steps=1, batchnorm=True)
    ddp = runs["ranks"][0]["batchnorm"]
    # BatchNorm normalises each rank's 64 samples by their own mean and variance, not the 128's:
    # the gradients differ far beyond float tolerance (hence SyncBatchNorm, or no BatchNorm)
    diff = max(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
               for a, b in zip(ddp["grads"][0], single["grads"][0]))
    assert diff > 1e-3


def test_only_rank_0_writes_and_its_checkpoint_resumes_in_one_process(runs):
    tmp = runs["tmp"]
    assert (tmp / "ddp_rank0" / CHECKPOINT).is_file() and not (tmp / "ddp_rank1").exists()
    ckpt = load_checkpoint(tmp / "ddp_rank0" / CHECKPOINT)
    assert ckpt["step"] == K and ckpt["config"]["distributed"] and ckpt["config"]["batch_size"] == BATCH
    assert History.from_jsonl(tmp / "ddp_rank0" / HISTORY)["step"].tolist() == list(range(1, K + 1))
    # the data position is the single-process one: K global batches into the epoch
    assert ckpt["rng"]["data"]["position"] == K * BATCH
    resumed = run(steps=2 * K, resume=tmp / "ddp_rank0" / CHECKPOINT)
    assert close(resumed["params"], runs["ref"]["params"], rtol=1e-5, atol=1e-6)
    assert close(resumed["grads"][-1], runs["ref"]["grads"][-1])


def test_a_single_process_checkpoint_resumes_in_two_processes(runs):
    for r in range(2):
        resumed = runs["ranks"][r]["from_single"]
        assert [row["step"] for row in resumed["history"]] == list(range(1, 2 * K + 1))
        assert close(resumed["params"], runs["ref"]["params"], rtol=1e-5, atol=1e-6)
        for step in range(K, 2 * K):
            assert close(resumed["grads"][step - K], runs["ref"]["grads"][step]), f"rank {r}, step {step + 1}"


# ----------------------------------------------------------------------------- sharding the data


def test_sharded_batches_are_distributed_samplers_shards_of_each_global_batch():
    x = torch.arange(40.0)
    one = Batches(x, 8, seed=5)
    ranks = [Batches(x, 8, seed=5, rank=r, world_size=2) for r in range(2)]
    assert [b.batches_per_epoch for b in ranks] == [5, 5]
    for _ in range(12):  # two and a half epochs: every epoch is a fresh permutation on every rank
        glob = next(one)
        parts = [next(b) for b in ranks]
        assert [p.shape[0] for p in parts] == [4, 4]
        assert not set(parts[0].tolist()) & set(parts[1].tolist())  # disjoint shards
        assert sorted(torch.cat(parts).tolist()) == sorted(glob.tolist())  # together the global batch
        assert ranks[0].state_dict() == one.state_dict()  # the same, resumable, position
    # the index pattern is torch's DistributedSampler (no shuffling) applied to the epoch's permutation
    from torch.utils.data import DistributedSampler

    fresh = [Batches(x, 8, seed=5, rank=r, world_size=2) for r in range(2)]
    perm = x[fresh[0]._permutation(0)]
    for r in range(2):
        idx = list(DistributedSampler(perm, num_replicas=2, rank=r, shuffle=False, drop_last=True))
        expected = torch.cat([perm[idx[4 * k:4 * k + 4]] for k in range(5)])
        assert torch.equal(torch.cat([next(fresh[r]) for _ in range(5)]), expected)


def test_sharded_batches_resume_with_another_world_size():
    x = torch.arange(64.0)
    a = Batches(x, 16, seed=2, rank=1, world_size=2)
    for _ in range(3):
        next(a)
    b = Batches(x, 16, seed=2)  # one process continues where the two stopped
    b.load_state_dict(a.state_dict())
    c = Batches(x, 16, seed=2)
    for _ in range(3):
        next(c)
    assert torch.equal(next(b), next(c))


@pytest.mark.parametrize("kw, message", [
    ({"batch_size": 10, "world_size": 4, "rank": 0}, "batch size 10 is not divisible by the world size 4"),
    ({"batch_size": 8, "world_size": 2, "rank": 2}, "need 0 <= rank < world_size"),
    ({"batch_size": 8, "world_size": 2, "rank": 0, "drop_last": False}, "needs drop_last=True"),
])
def test_sharded_batches_reject_bad_input(kw, message):
    bs = kw.pop("batch_size")
    with pytest.raises(ValueError, match=message):
        Batches(torch.zeros(32, 2), bs, **kw)


def test_a_callable_source_is_sharded_from_the_global_draw():
    draw = lambda n: torch.arange(float(n))  # noqa: E731
    assert gdist.shard(draw, 8, 1, 2)(4).tolist() == [1.0, 3.0, 5.0, 7.0]
    with pytest.raises(ValueError, match=r"Batches\(x, 8, rank=1, world_size=2\)"):
        gdist.shard(Batches(torch.zeros(16, 2), 8), 8, 1, 2)  # an unsharded Batches would repeat the data


# ----------------------------------------------------------------------------- bad input


def test_distributed_outside_torchrun_is_a_clear_error(monkeypatch, capsys, tmp_path):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert main_train(["--distributed", "--model", "mlp", "--data", "synthetic", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("torchrun --nproc-per-node 2 -m ganlib train --distributed --model mlp --data synthetic --out "
            f"{tmp_path} ...") in err
    with pytest.raises(RuntimeError, match="must be started by torchrun.*torchrun --nproc-per-node 2"):
        train_gan(*models(), lambda n: torch.randn(n, 2), config(distributed=True))


def test_a_world_size_that_does_not_divide_the_batch_is_a_clear_error(monkeypatch, capsys, tmp_path):
    # the check comes before any connection: no other process is needed to see it
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(gdist.free_port()))
    argv = ["--distributed", "--model", "mlp", "--data", "synthetic", "--out", str(tmp_path), "--batch-size", "128"]
    assert main_train(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "batch size 128 is not divisible by the world size 3" in err
    assert "e.g. 126 or 129" in err
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        train_gan(*models(), lambda n: torch.randn(n, 2), config(distributed=True))


def test_sync_batchnorm_needs_distributed_and_cuda(capsys, tmp_path):
    with pytest.raises(ValueError, match="set distributed=True"):
        TrainConfig(sync_batchnorm=True)
    assert main_train(["--sync-batchnorm", "--model", "mlp", "--data", "synthetic", "--out", str(tmp_path)]) == 2
    assert "--sync-batchnorm needs --distributed" in capsys.readouterr().err
    _, D = models(batchnorm=True)
    with pytest.raises(ValueError, match="needs CUDA GPUs"):
        gdist.wrap(D, torch.device("cpu"), sync_batchnorm=True)


# ----------------------------------------------------------------------------- the command line


def test_torchrun_runs_ganlib_train_distributed_and_one_process_resumes_it(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(gdist.free_port()), "-m", "ganlib", "train", "--distributed", "--model", "mlp",
           "--data", "synthetic", "--out", str(out), "--steps", "2", "--batch-size", "32", "--width", "8",
           "--device", "cpu"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("ganlib train: done at step 2") == 1  # rank 0 talks, rank 1 is silent
    assert "2 processes of 16 images per step" in p.stdout
    ckpt = load_checkpoint(out / CHECKPOINT)
    assert ckpt["step"] == 2 and ckpt["config"]["distributed"]
    assert main_train(["--out", str(out), "--resume", "--steps", "3", "--device", "cpu"]) == 0
    assert load_checkpoint(out / CHECKPOINT)["step"] == 3
    assert History.from_jsonl(out / HISTORY)["step"].tolist() == [1, 2, 3]
