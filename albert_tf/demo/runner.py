"""The demo job's runner: run folders, steps in order, manifests, progress with an ETA.

`run_job` calls each step's function (`STEP_FUNCTIONS`, one module per concern) and writes
its manifest last, so a manifest marks a finished step and a re-run skips it.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import time

from albert_tf.demo import export_step
from albert_tf.demo import finetune as finetune_step
from albert_tf.demo import label_efficiency
from albert_tf.demo import report
from albert_tf.demo import steps
from albert_tf.demo import tfm_check
from albert_tf.demo.job import (REQUIRES, STEP_TITLES, STEPS, Job, local_folder, shown,
                                write_text)

STEP_FUNCTIONS = {"spm": steps.step_spm, "data": steps.step_data,
                  "pretrain": steps.step_pretrain, "tfm_check": tfm_check.step_tfm_check,
                  "eval": steps.step_eval, "export": export_step.step_export,
                  "finetune": finetune_step.step_finetune,
                  "curve": label_efficiency.step_curve, "report": report.step_report}

# Seconds each step of the full preset took on two otherwise idle CPU cores (README); the
# ETA scales them by how fast the finished steps ran on this machine.
EXPECTED_SECONDS = {"spm": 2, "data": 2, "pretrain": 127, "tfm_check": 210, "eval": 13,
                    "export": 20, "finetune": 63, "curve": 172, "report": 2}
# The same for the quick preset.
QUICK_EXPECTED_SECONDS = {"spm": 1, "data": 1, "pretrain": 13, "tfm_check": 17, "eval": 7,
                          "export": 15, "finetune": 24, "curve": 7, "report": 1}
# Seconds added to both sides of the ETA's speed ratio, so that the first short steps do
# not swing it.
ETA_DAMPING = 30


def _expected(settings, step):
    if step == "tfm_check" and not settings.tfm_check:
        return 0
    return (QUICK_EXPECTED_SECONDS if settings.max_documents else EXPECTED_SECONDS)[step]


def _clock(seconds):
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def find_run_dir(runs_root, settings):
    """The newest run folder under `runs_root` started with the same settings, or None."""
    runs_root = pathlib.Path(local_folder(os.fspath(runs_root), "--runs_root"))
    if not runs_root.exists():
        return None
    for folder in sorted((p for p in runs_root.iterdir() if p.is_dir()), reverse=True):
        if _fingerprint_of(folder) == settings.fingerprint():
            return folder
    return None


def _fingerprint_of(run_dir):
    """The settings fingerprint in `run_dir/job.json`, or None (no or unreadable file)."""
    job_file = pathlib.Path(run_dir) / "job.json"
    try:
        return json.loads(job_file.read_text()).get("fingerprint")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def new_run_dir(runs_root):
    """A new folder `<runs_root>/<timestamp>` (not created)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = pathlib.Path(local_folder(os.fspath(runs_root), "--runs_root")) / stamp
    suffix = 1
    while folder.exists():
        folder = pathlib.Path(runs_root) / f"{stamp}-{suffix}"
        suffix += 1
    return folder


def run_job(settings, run_dir, steps=STEPS, redo=(), log=None):
    """Runs the named steps in order, skipping those already finished (unless in `redo`).

    A step that runs makes every later step of the call run again too (its inputs changed).
    A step run again starts from an empty folder; one interrupted before its manifest was
    written resumes from what its folder holds (a pretraining run from its last checkpoint).
    Returns {step: manifest}.
    """
    unknown = [s for s in list(steps) + list(redo) if s not in STEPS]
    if unknown:
        raise ValueError(f"Unknown steps {unknown}; the steps are {', '.join(STEPS)}.")
    settings.validate()
    job = Job(settings, run_dir, log)
    if job.run_dir.exists() and not job.run_dir.is_dir():
        raise ValueError(f"--run_dir={job.run_dir} is a file; expected a folder.")
    job_file = job.run_dir / "job.json"
    if job_file.exists():
        # A folder holds the run of one set of settings: another run would mix its steps
        # with this one's (and a later run of these settings would no longer find it).
        fingerprint = _fingerprint_of(job.run_dir)
        if fingerprint != settings.fingerprint():
            raise ValueError(
                f"--run_dir={job.run_dir} holds a run with other settings (fingerprint "
                f"{fingerprint}, these are {settings.fingerprint()}); give another --run_dir "
                "or leave it out (a new or matching folder is then chosen).")
    job.run_dir.mkdir(parents=True, exist_ok=True)
    write_text(job_file, json.dumps(
        {"fingerprint": settings.fingerprint(), "settings": dataclasses.asdict(settings)},
        indent=2, sort_keys=True) + "\n")
    ordered = [s for s in STEPS if s in steps]
    results, rerun = {}, False
    started = time.time()
    # The ETA of the whole job: the expected seconds of the steps still to run, scaled by
    # how the steps that ran in this call compare with their expected seconds.
    to_run = {step: _expected(settings, step) for step in ordered}
    spent, expected_spent = 0.0, 0.0

    def eta():
        left = sum(to_run.values())
        factor = (spent + ETA_DAMPING) / (expected_spent + ETA_DAMPING)
        return _clock(left * factor)

    for index, step in enumerate(ordered, 1):
        header = f"[{index}/{len(ordered)} {step}]"
        done = job.manifest(step)
        if done is not None and not rerun and step not in redo:
            job.log(f"{header} done before ({done.get('seconds', 0):.0f} s); reusing "
                    f"{shown(job.manifest_path(step))}")
            results[step] = done
            to_run.pop(step)
            continue
        for needed in REQUIRES.get(step, []):
            if needed not in ordered:
                job.require(needed)
        if rerun or job.manifest_path(step).exists():
            # Its outputs were made from other inputs or settings, or are being redone:
            # start clean (a training run would otherwise resume, already finished). An
            # interrupted step (no manifest, same inputs) keeps its folder and resumes.
            shutil.rmtree(job.run_dir / step, ignore_errors=True)
        job.log(f"{header} {STEP_TITLES[step]} ... (job ETA {eta()})")
        begin = time.time()
        manifest = STEP_FUNCTIONS[step](job)
        manifest["seconds"] = time.time() - begin
        results[step] = job.write_manifest(step, manifest)
        spent += manifest["seconds"]
        expected_spent += to_run.pop(step)
        job.log(f"{header} finished in {manifest['seconds']:.0f} s"
                f"{': ' + manifest['summary'] if manifest.get('summary') else ''}"
                f"{f' (job ETA {eta()})' if to_run else ''}")
        rerun = True
    job.log(f"All steps done in {time.time() - started:.0f} s; run folder {shown(job.run_dir)}")
    return results
