"""Crash safety for real: SIGKILL a sweep in the middle of a run, start it again, check every record."""

import json
import signal
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent("""
    import sys
    import flops_fit as ff
    from flops_fit.examples import GPT, lm_loss, stdlib_datasets

    root, log = sys.argv[1], sys.argv[2]

    stepped = set()

    def note(event):  # run_start and run_end, and each run's first logged step
        if event["type"] == "step":
            if event["run_id"] in stepped:
                return
            stepped.add(event["run_id"])
        if event["type"] in ("run_start", "step", "run_end"):
            with open(log, "a") as handle:
                handle.write(f"{event['type']} {event['run_id']} {event.get('status', '')}\\n")
                handle.flush()

    train, held = stdlib_datasets(seq_len=16, max_bytes=200_000)
    plan = ff.plan_sweep(GPT, "d_model", [5e9, 1e10], points_per_budget=3, tokens_per_param=50, size_span=3,
                         multiple_of=2, model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2})
    ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, store=root, callbacks=[note],
                 train_config=ff.TrainConfig(batch_size=32), progress=False)
""")


def test_sigkill_mid_run_then_resume(tmp_path):
    script, root, log = tmp_path / "sweep.py", tmp_path / "sweep", tmp_path / "events.log"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(log)])
    try:
        deadline, ready = time.time() + 600, False
        # wait until 3 runs are recorded and the fourth (the longest, ~1,100 steps) has logged its first step
        while time.time() < deadline:
            events = log.read_text().splitlines() if log.exists() else []
            ends = [e for e in events if e.startswith("run_end")]
            if len(ends) >= 3 and events and events[-1].startswith("step"):
                ready = True
                break
            assert proc.poll() is None, "the sweep finished before it could be killed"
            time.sleep(0.02)
        assert ready, "the sweep did not reach its fourth run in time"
        proc.send_signal(signal.SIGKILL)  # a few steps into it
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = {p.name: p.read_bytes() for p in (root / "runs").glob("*.json")}
    first_log = log.read_text().splitlines()
    interrupted = [e for e in first_log if e.startswith("run_start")][-1].split()[1]
    assert len(before) >= 3 and f"run_end {interrupted}" not in " ".join(first_log)  # killed mid-run
    assert interrupted + ".json" not in before

    subprocess.run([sys.executable, str(script), str(root), str(log)], check=True, timeout=300)

    plan_ids = set(__import__("pandas").read_csv(root / "plan.csv")["run_id"])
    records = {p.stem: json.loads(p.read_text()) for p in (root / "runs").glob("*.json")}  # all parse
    assert set(records) == plan_ids and len(plan_ids) == 6
    assert all(r["status"] == "completed" for r in records.values())
    for name, data in before.items():  # what finished before the kill is untouched
        assert (root / "runs" / name).read_bytes() == data
    second_log = log.read_text().splitlines()[len(first_log):]
    started_again = {e.split()[1] for e in second_log if e.startswith("run_start")}
    assert started_again == plan_ids - {n[:-5] for n in before}  # nothing that finished ran twice
    assert interrupted in started_again
    ended = [e.split()[1] for e in first_log + second_log if e.startswith("run_end")]
    assert sorted(ended) == sorted(plan_ids)  # every run completed exactly once
    assert not list(root.rglob("*.tmp"))
