"""Every test runs offline, against a fresh run store in a temporary workbench home."""
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="workbench-test-home-")
for _name in ("WORKBENCH_STORE", "WORKBENCH_MLFLOW", "WORKBENCH_ARTIFACTS"):  # a user's team store stays out of tests
    os.environ.pop(_name, None)
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say which checks were skipped and what to install to run them (a new user's `make test` passes without
    Chromium; CI installs it and runs them)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.section("checks skipped")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{n:3d} skipped: {reason}")
    if any("Chromium" in r or "playwright" in r for r in reasons):
        terminalreporter.write_line("to run the browser checks: apt-get install chromium  (Debian's Chromium at "
                                    "/usr/bin/chromium, or set WORKBENCH_CHROMIUM) and pip install playwright; "
                                    "no browser download is needed")
