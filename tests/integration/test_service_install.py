"""The systemd unit and scripts/install-service, the steps README.md's service section runs.

The unit tests parse systemd/go-trader.service (and ask systemd-analyze when it is installed).
The install tests need root (CI runs as root): they run the real script against a scratch root
with real unprivileged users, then act as those users (runuser) on the installed files.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.cli import EXIT_CONFIG

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT = REPO_ROOT / "systemd" / "go-trader.service"
INSTALL = REPO_ROOT / "scripts" / "install-service"
README = REPO_ROOT / "README.md"
RUN_TIMEOUT_S = 120

# The hardening `systemd-analyze security` flagged on the old unit, as the issue lists it.
HARDENING = {
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "ProtectKernelLogs": "yes",
    "ProtectHostname": "yes",
    "PrivateUsers": "yes",
    "RemoveIPC": "yes",
    "MemoryDenyWriteExecute": "yes",
    # kept from before: a regression here matters as much
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
}


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (systemd keys may repeat), comments dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service_section() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


def render_unit(prefix: str, user: str = "go-trader") -> str:
    """The unit as install-service writes it for PREFIX and USER."""
    text = UNIT.read_text().replace("/opt/go-trader", prefix)
    text = re.sub(r"(?m)^User=go-trader$", f"User={user}", text)
    return re.sub(r"(?m)^Group=go-trader$", f"Group={user}", text)


# --- the unit ---------------------------------------------------------------------------------

def test_a_config_error_does_not_restart_the_service() -> None:
    service = service_section()
    assert service["Restart"] == ["always"]
    prevent = " ".join(service.get("RestartPreventExitStatus", [])).split()
    assert str(EXIT_CONFIG) in prevent, "exit 2 (configuration error) must not restart every RestartSec"


def test_unit_has_the_hardening() -> None:
    service = service_section()
    for key, want in HARDENING.items():
        assert service.get(key) == [want], f"{key}: want {want!r}, unit has {service.get(key)}"
    filters = service.get("SystemCallFilter", [])
    assert "@system-service" in filters
    assert "~@privileged" in filters
    assert service.get("SystemCallArchitectures") == ["native"]
    # systemd creates the state and log folders for the service user
    assert service["StateDirectory"] == ["go-trader"] and service["LogsDirectory"] == ["go-trader"]
    assert service["User"] == ["go-trader"] and service["Group"] == ["go-trader"]
    assert service["EnvironmentFile"] == ["-/etc/go-trader/env"]


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd to run this check)")
    return exe


@pytest.fixture
def rendered_unit(tmp_path: Path) -> Path:
    """The unit pointed at this checkout, so ExecStart= names a file that exists."""
    if not (REPO_ROOT / ".venv" / "bin" / "go-trader").exists():
        pytest.skip("needs the project's .venv (run scripts/bootstrap first)")
    path = tmp_path / "go-trader.service"
    path.write_text(render_unit(str(REPO_ROOT)))
    return path


def test_systemd_analyze_verify_accepts_the_unit(rendered_unit: Path) -> None:
    r = subprocess.run([_analyze(), "verify", str(rendered_unit)], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT_S)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def test_systemd_analyze_security_no_longer_flags_the_listed_options(rendered_unit: Path) -> None:
    r = subprocess.run([_analyze(), "security", "--offline=yes", "--no-pager", str(rendered_unit)],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if r.returncode != 0 and "offline" in r.stderr:
        pytest.skip(f"this systemd-analyze has no offline security check: {r.stderr.strip()[:200]}")
    flagged = {line.split()[1].split("=")[0] for line in r.stdout.splitlines() if line.startswith("✗")}
    assert flagged, r.stdout + r.stderr  # the output format is the one parsed here
    listed = {"SystemCallFilter", "ProtectProc", "ProcSubset", "ProtectKernelLogs", "ProtectHostname",
              "PrivateUsers", "RemoveIPC", "MemoryDenyWriteExecute"}
    still = listed & flagged
    # @resources stays allowed on purpose (OpenBLAS's mbind, checker limits): see the unit
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("✗ SystemCallFilter")]
    if still == {"SystemCallFilter"} and all("~@resources" in ln for ln in lines):
        still = set()
    assert not still, r.stdout


def test_readme_installs_with_the_script() -> None:
    text = README.read_text()
    section = text[text.index("## Running it as a service"):]
    section = section[:section.index("\n## ", 3)] if "\n## " in section[3:] else section
    assert "scripts/install-service" in section
    assert "install -d -m 0750 /etc/go-trader" not in section  # the step that locked the service out
    assert "| sudo tee /etc/go-trader/env" not in section  # tee makes the token file world-readable


# --- the install script, as root against a scratch root ---------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None
                                or shutil.which("runuser") is None,
                                reason="installs users and chowns files: needs root with useradd and "
                                       "runuser (CI runs as root)")


def _unique_name(tag: str) -> str:
    return f"gt{tag}{secrets.token_hex(4)}"  # short, lowercase, never an existing account


def _remove_account(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True, timeout=RUN_TIMEOUT_S)
    subprocess.run(["groupdel", name], capture_output=True, timeout=RUN_TIMEOUT_S)


def as_user(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", *argv], cwd="/", capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)


def _traversable_tmpdir(prefix: str) -> Path:
    # pytest's tmp_path is 0700 root: another user could not even reach the scratch root
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture
def scratch_root() -> Iterator[Path]:
    root = _traversable_tmpdir("go-trader-root-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def service_user() -> Iterator[str]:
    """A fresh name for the service user; install-service creates it, the fixture removes it."""
    name = _unique_name("svc")
    try:
        yield name
    finally:
        _remove_account(name)


@pytest.fixture
def outsider() -> Iterator[str]:
    """A real unprivileged user outside the service's group."""
    name = _unique_name("out")
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/false", name],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    try:
        yield name
    finally:
        _remove_account(name)


@pytest.fixture
def runnable_prefix(outsider: str) -> Iterator[Path]:
    """A --prefix whose .venv/bin/go-trader an unprivileged user can run.

    The checkout itself when its .venv works for other users; otherwise (a .venv built from
    root's own Python, e.g. under /root/.pyenv) a tiny venv of a system Python of the same
    version that imports this checkout and its installed packages: nothing big is copied.
    """
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.skip("needs the project's .venv (run scripts/bootstrap first)")
    if as_user(outsider, str(venv_python), "-c", "import scheduler.cli").returncode == 0:
        yield REPO_ROOT
        return
    if as_user(outsider, "test", "-r", str(REPO_ROOT / "scheduler" / "cli.py")).returncode != 0:
        pytest.skip(f"{REPO_ROOT} is not readable by other users, so no service user could run it")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system_python = next((p for p in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}")
                          if os.access(p, os.X_OK)), None)
    if system_python is None:
        pytest.skip(f"{venv_python} cannot be run by other users and there is no system python{version} "
                    "to stand in for it")
    prefix = _traversable_tmpdir("go-trader-prefix-")
    try:
        subprocess.run([system_python, "-m", "venv", "--without-pip", str(prefix / ".venv")], check=True,
                       capture_output=True, timeout=RUN_TIMEOUT_S)
        site = subprocess.run([str(prefix / ".venv" / "bin" / "python"), "-c",
                               "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True, timeout=RUN_TIMEOUT_S).stdout.strip()
        project_site = subprocess.run([str(venv_python), "-c",
                                       "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                      check=True, capture_output=True, text=True,
                                      timeout=RUN_TIMEOUT_S).stdout.strip()
        Path(site, "go-trader-checkout.pth").write_text(f"{REPO_ROOT}\n{project_site}\n")
        entry = prefix / ".venv" / "bin" / "go-trader"
        entry.write_text(f"#!{prefix}/.venv/bin/python\nimport sys\nfrom scheduler.cli import main\n"
                         "sys.exit(main())\n")
        entry.chmod(0o755)
        if as_user(outsider, str(entry), "list-strategies").returncode != 0:
            pytest.skip(f"a {system_python} venv cannot import this checkout's packages as another user")
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def install(root: Path, user: str, prefix: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL), "--root", str(root), "--user", user, "--prefix", str(prefix), *extra],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def owner_mode(path: Path) -> tuple[str, str, int]:
    import grp

    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


@needs_root
def test_install_lets_the_service_user_and_only_it_read_the_config(
        scratch_root: Path, service_user: str, outsider: str, runnable_prefix: Path) -> None:
    r = install(scratch_root, service_user, runnable_prefix, "--generate-token")
    assert r.returncode == 0, r.stdout + r.stderr

    account = pwd.getpwnam(service_user)
    assert account.pw_uid != 0 and account.pw_shell.endswith(("nologin", "false"))
    assert account.pw_dir == str(runnable_prefix)
    etc = scratch_root / "etc" / "go-trader"
    config, env = etc / "config.json", etc / "env"
    unit = scratch_root / "etc" / "systemd" / "system" / "go-trader.service"
    assert owner_mode(etc) == ("root", service_user, 0o750)
    assert owner_mode(config) == ("root", service_user, 0o640)
    assert owner_mode(env) == ("root", service_user, 0o640)
    assert owner_mode(unit) == ("root", "root", 0o644)
    assert owner_mode(scratch_root / "var" / "lib" / "go-trader") == (service_user, service_user, 0o700)
    assert owner_mode(scratch_root / "var" / "log" / "go-trader") == (service_user, service_user, 0o750)
    assert unit.read_text() == render_unit(str(runnable_prefix), service_user)
    token = re.search(r"(?m)^GO_TRADER_STATUS_TOKEN=([0-9a-f]{64})$", env.read_text())
    assert token is not None, env.read_text()
    assert token.group(1) not in r.stdout + r.stderr  # never printed

    # the service user reads its config and the daemon accepts it ...
    seen = as_user(service_user, "cat", str(config))
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout == (REPO_ROOT / "config.json").read_text()
    ok = as_user(service_user, str(runnable_prefix / ".venv" / "bin" / "go-trader"), "validate-config",
                 "--config", str(config))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ": OK (" in ok.stdout
    # ... but cannot change it
    assert as_user(service_user, "sh", "-c", f": >> '{config}'").returncode != 0
    # and a user outside its group reads neither the config nor the token
    for path in (config, env):
        denied = as_user(outsider, "cat", str(path))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, (path, denied)


@needs_root
def test_reinstall_keeps_config_and_token_and_repairs_modes(
        scratch_root: Path, service_user: str, runnable_prefix: Path) -> None:
    assert install(scratch_root, service_user, runnable_prefix, "--generate-token").returncode == 0
    etc = scratch_root / "etc" / "go-trader"
    config, env = etc / "config.json", etc / "env"
    edited = json.loads(config.read_text()) | {"interval_seconds": 900}
    config.write_text(json.dumps(edited))
    token = env.read_text()
    # modes an operator (or the old README steps) could leave
    etc.chmod(0o755)
    os.chown(etc, 0, 0)
    config.chmod(0o644)
    os.chown(env, 0, 0)
    env.chmod(0o644)

    r = install(scratch_root, service_user, runnable_prefix, "--generate-token")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(config.read_text()) == edited
    assert env.read_text() == token
    assert owner_mode(etc) == ("root", service_user, 0o750)
    assert owner_mode(config) == ("root", service_user, 0o640)
    assert owner_mode(env) == ("root", service_user, 0o640)


@needs_root
def test_install_fails_plainly_when_the_service_user_cannot_run_the_venv(
        scratch_root: Path, service_user: str) -> None:
    # a .venv only root can use, as one built from root's own Python (e.g. under /root/.pyenv)
    prefix = _traversable_tmpdir("go-trader-prefix-")
    try:
        bin_dir = prefix / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        for name in ("python", "go-trader"):
            (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
            (bin_dir / name).chmod(0o700)
        r = install(scratch_root, service_user, prefix)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    assert r.returncode != 0
    assert f"cannot run {prefix}/.venv/bin/python" in r.stderr
    assert "PYTHON=/usr/bin/python3 scripts/bootstrap" in r.stderr


@needs_root
def test_install_refuses_to_run_without_root(scratch_root: Path, outsider: str) -> None:
    r = as_user(outsider, str(INSTALL), "--root", str(scratch_root))
    assert r.returncode != 0
    assert "must run as root" in r.stderr
    assert not (scratch_root / "etc").exists()


@needs_root
@pytest.mark.parametrize("bad", [["--prefix", "relative/path"], ["--prefix", "/"], ["--prefix", "/opt/with space"],
                                 ["--user", "Root"], ["--user", "x;rm"], ["--root", "/no/such/dir"],
                                 ["--config", "/no/such/config.json"], ["--frobnicate"]])
def test_install_rejects_bad_arguments_before_touching_anything(scratch_root: Path, bad: list[str]) -> None:
    name = _unique_name("bad")
    try:
        r = subprocess.run([str(INSTALL), "--root", str(scratch_root), "--user", name, *bad],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    finally:
        _remove_account(name)  # only there if the script wrongly went ahead
    assert r.returncode != 0
    assert r.stderr.startswith("install-service: ")
    assert bad[-1] in r.stderr or bad[0] in r.stderr
    assert not (scratch_root / "etc").exists()


# --- the daemon inside the unit's sandbox -----------------------------------------------------
# No systemd runs in CI's container, so the sandbox options that could break the daemon are
# rebuilt from their kernel parts: SystemCallFilter=/SystemCallErrorNumber=EPERM as a seccomp
# allow list (libseccomp, the set systemd-analyze expands from the unit's lines),
# MemoryDenyWriteExecute as prctl(PR_SET_MDWE) (what systemd uses on kernels that have it), and
# ProtectProc=invisible/ProcSubset=pid as a private /proc mounted with those options.

SANDBOX_EXEC = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(f"PR_SET_MDWE: {os.strerror(ctypes.get_errno())}")
lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
ctx = lib.seccomp_init(0x00050000 | 1)  # SCMP_ACT_ERRNO(EPERM) for everything not allowed
for name in open(sys.argv[1]).read().split():
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr >= 0 and lib.seccomp_rule_add(ctx, 0x7FFF0000, nr, 0) != 0:  # SCMP_ACT_ALLOW
        sys.exit(f"seccomp_rule_add {name} failed")
if lib.seccomp_load(ctx) != 0:
    sys.exit("seccomp_load failed")
os.execv(sys.argv[2], sys.argv[2:])
"""

PROBE = r"""
import mmap, os
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("wx-allowed")
except OSError:
    print("wx-refused")
try:
    os.setgroups([])  # @privileged: EPERM under the filter (root outside it may do it)
    print("privileged-allowed")
except PermissionError:
    print("privileged-refused")
print("proc-sys-visible" if os.path.exists("/proc/sys/kernel") else "proc-sys-hidden")
"""


def _syscall_groups(analyze: str) -> dict[str, list[str]]:
    out = subprocess.run([analyze, "syscall-filter", "--no-pager"], capture_output=True, text=True,
                         check=True, timeout=RUN_TIMEOUT_S).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def _expand(name: str, groups: dict[str, list[str]]) -> set[str]:
    if not name.startswith("@"):
        return {name}
    return set().union(*(_expand(member, groups) for member in groups[name]))


def unit_syscall_allow_list(analyze: str) -> set[str]:
    """The syscalls the unit's SystemCallFilter= lines allow: an allow list, then ~removals."""
    groups = _syscall_groups(analyze)
    allowed: set[str] = set()
    for i, value in enumerate(service_section()["SystemCallFilter"]):
        deny = value.startswith("~")
        names = set().union(*(_expand(n, groups) for n in value.lstrip("~").split()))
        assert i > 0 or not deny, "the unit's first SystemCallFilter= must be an allow list"
        allowed = allowed - names if deny else allowed | names
    return allowed


@pytest.fixture
def seccomp_mdwe(tmp_path: Path) -> list[str]:
    """argv prefix running a command under the unit's syscall filter and MemoryDenyWriteExecute."""
    import ctypes
    import ctypes.util

    analyze = _analyze()
    if ctypes.util.find_library("seccomp") is None:
        pytest.skip("libseccomp is not installed: cannot rebuild the unit's SystemCallFilter=")
    if ctypes.CDLL(None).prctl(66, 0, 0, 0, 0) < 0:  # PR_GET_MDWE
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+): cannot rebuild MemoryDenyWriteExecute=")
    allow = tmp_path / "syscalls.txt"
    allow.write_text("\n".join(sorted(unit_syscall_allow_list(analyze))))
    wrapper = tmp_path / "sandbox_exec.py"
    wrapper.write_text(SANDBOX_EXEC)
    return [sys.executable, str(wrapper), str(allow)]


@pytest.fixture
def sandbox(seccomp_mdwe: list[str]) -> list[str]:
    """argv prefix running a command inside the whole rebuilt sandbox (private /proc too)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting a private /proc with ProtectProc=/ProcSubset= options needs root and unshare")
    return ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c",
            'mount -t proc -o hidepid=invisible,subset=pid proc /proc && exec "$@"', "sandbox", *seccomp_mdwe]


def test_the_sandbox_rebuilt_here_enforces(sandbox: list[str]) -> None:
    # without this, a broken rebuild would let the daemon test below pass for nothing
    r = subprocess.run([*sandbox, sys.executable, "-c", PROBE], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT_S)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["wx-refused", "privileged-refused", "proc-sys-hidden"]


def test_the_daemon_runs_a_cycle_inside_the_units_sandbox(sandbox: list[str], tmp_path: Path) -> None:
    # fork zygote, checker processes, the fetch step and state saves: all of a cycle
    config = json.loads((REPO_ROOT / "config.demo.json").read_text())
    config |= {"log_dir": str(tmp_path / "logs"), "state_file": str(tmp_path / "state.json")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    r = subprocess.run([*sandbox, str(REPO_ROOT / ".venv" / "bin" / "go-trader"), "--config", str(path), "--once"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"{len(config['strategies'])} strategies checked" in r.stdout
    # a refused syscall shows as a failed fetch step or check, not as the daemon's exit status
    assert "failed" not in r.stdout.lower() and "Operation not permitted" not in r.stdout + r.stderr, r.stdout
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["cycle_count"] == 1
    failed = {sid: s["last_check"] for sid, s in state["sleeves"].items() if not s["last_check"]["ok"]}
    assert not failed, failed


def test_the_daemon_serves_and_stops_cleanly_under_the_units_syscall_filter(
        seccomp_mdwe: list[str], tmp_path: Path) -> None:
    # the long-running half: status server thread, HTTP, SIGTERM handling, the final save
    import time
    import urllib.request

    config = json.loads((REPO_ROOT / "config.demo.json").read_text())
    config |= {"log_dir": str(tmp_path / "logs"), "state_file": str(tmp_path / "state.json"),
               "status": {"host": "127.0.0.1", "port": 0}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    endpoint = tmp_path / "state.json.endpoint"
    with open(tmp_path / "daemon.out", "wb") as out:
        proc = subprocess.Popen([*seccomp_mdwe, str(REPO_ROOT / ".venv" / "bin" / "go-trader"), "--config",
                                 str(path)], stdout=out, stderr=subprocess.STDOUT)
    try:
        # a fresh state makes every strategy due: let that first cycle finish before stopping
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline and not (
                endpoint.exists() and "Cycle 1 complete" in (tmp_path / "daemon.out").read_text()):
            time.sleep(0.1)
        assert endpoint.exists(), (tmp_path / "daemon.out").read_text()
        with urllib.request.urlopen(endpoint.read_text().strip() + "/status", timeout=10) as r:
            assert json.load(r)["synthetic_market"] is True
        proc.terminate()
        assert proc.wait(timeout=60) == 0, (tmp_path / "daemon.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "daemon.out").read_text()
    assert "failed" not in log.lower() and "stopped; state saved" in log, log
