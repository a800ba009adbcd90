//! The HumanEval checker: a completion is run with its tests in a separate,
//! limited `python3` process.
//!
//! The program `prompt + completion + "\n" + test + "\ncheck(entry_point)\n"`
//! ([`humaneval_program`]) is written to `solution.py` in a fresh temporary
//! directory, and run by a preamble (`guard.py`, embedded in this crate)
//! which first
//! - sets resource limits: address space ([`SandboxConfig::memory_bytes`],
//!   1 GiB), CPU seconds (the timeout, rounded up), file size
//!   ([`SandboxConfig::file_size_bytes`], 16 MiB), no core files, 64 open
//!   files, and one process (no forks or threads; the kernel does not apply
//!   this to root);
//! - refuses, with `PermissionError("tenbits sandbox: ...")`, writes outside
//!   the temporary directory (`open`/`io.open`/`io.FileIO` in a write mode,
//!   `os.open` with write flags, and `os.remove`, `unlink`, `rmdir`, `mkdir`,
//!   `rename`, `replace`, `chmod`, `truncate`, `symlink`, … and
//!   `shutil.rmtree`/`chown` on paths that resolve outside it);
//! - disables new processes and signals (`os.system`, `fork`, `exec*`,
//!   `spawn*`, `posix_spawn`, `kill`, the `subprocess` functions), sockets
//!   and name lookups, and the imports that would reach around these guards
//!   (`ctypes`, `sqlite3`, `multiprocessing`, …);
//!
//! then runs the program normally and, if it returns, prints a random nonce,
//! so a program that exits early (`sys.exit(0)`) does not pass.
//!
//! Around the process, where the system allows (probed once per
//! [`Sandbox::new`], reported by [`Sandbox::isolation`]):
//! - `unshare --net` puts it in an empty network namespace (root; else
//!   `unshare --user --map-root-user --net` where unprivileged user
//!   namespaces are enabled), so there is no network even past the Python
//!   guards;
//! - run as root, `setpriv` drops it to user and group `nobody` (65534),
//!   owner of the temporary directory, so ordinary file permissions keep it
//!   out of everything else root owns. This needs an interpreter that
//!   `nobody` can run (`/usr/bin/python3`, not one under `/root` such as a
//!   pyenv install); otherwise the program runs as the caller.
//!
//! It runs in its own process group with a cleared environment and no
//! stdin; after the wall-clock [`SandboxConfig::timeout`] (10 s) the whole
//! group is killed.
//!
//! What this does **not** protect against: code written to escape. The
//! Python guards are patches that a program can undo (through `gc`, saved
//! references, C extensions that are not blocked); then only the OS-level
//! layers remain: the rlimits, the network namespace, and (as root) the
//! `nobody` user, which can still read world-readable files and write
//! world-writable ones (`/tmp`, `/dev/shm`). There is no filesystem, PID or
//! IPC namespace, seccomp filter or cgroup. Run untrusted code in a real
//! sandbox (a VM or gVisor container).

use std::ffi::OsString;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bench::CodeTest;
use crate::error::{EvalError, Result};
use crate::extract::{extract_code, Grade};

const GUARD: &str = include_str!("guard.py");
/// `nobody` and `nogroup`.
const NOBODY: u32 = 65534;
/// How much of stderr a [`CheckResult`] keeps.
const TAIL_BYTES: u64 = 2000;
/// How long [`CheckResult::detail`] may be, in characters.
const DETAIL_CHARS: usize = 300;

/// Limits and isolation of checker processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Wall-clock limit per program (CPU limit: this, rounded up).
    pub timeout: Duration,
    /// Address-space limit (RLIMIT_AS and RLIMIT_DATA), bytes.
    pub memory_bytes: u64,
    /// Largest file the program may write (RLIMIT_FSIZE; its stdout and
    /// stderr are files too), bytes.
    pub file_size_bytes: u64,
    /// The Python interpreter (looked up in `PATH` unless it has a `/`).
    pub python: PathBuf,
    /// Use a network namespace when `unshare` allows it.
    pub isolate_network: bool,
    /// When running as root, run the program as `nobody` (with `setpriv`).
    pub drop_privileges: bool,
    /// Programs run at once by [`Sandbox::run_many`] and
    /// [`Sandbox::check_many`].
    pub workers: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            file_size_bytes: 16 << 20,
            python: PathBuf::from("python3"),
            isolate_network: true,
            drop_privileges: true,
            workers: 2,
        }
    }
}

/// The OS-level isolation a [`Sandbox`] found it could use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// The program runs in its own, empty network namespace.
    pub network_namespace: bool,
    /// The program runs as this user id (`Some(65534)` when dropped from
    /// root; `None`: as the caller).
    pub user: Option<u32>,
}

/// How a checked program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// The program ran to its end: every test passed.
    Passed,
    /// An `assert` failed.
    AssertionFailed,
    /// The wall-clock or CPU time limit ran out.
    Timeout,
    /// The program tried something the sandbox forbids (a write outside its
    /// directory, a socket, a process).
    Blocked,
    /// Any other error: an exception, a syntax error, a limit, an early exit.
    Error,
}

/// The result of running one program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// How it ended.
    pub verdict: Verdict,
    /// A short reason: empty when passed, else the exception line (at most
    /// 300 characters) or what stopped it.
    pub detail: String,
    /// The end of its stderr (at most 2,000 bytes).
    pub stderr_tail: String,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl CheckResult {
    /// Whether every test passed.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }
}

/// The program HumanEval runs: `prompt + completion + "\n" + test +
/// "\ncheck(entry_point)\n"`. A completion may be the function's body or
/// the whole function (with its imports): the prompt's stub is then
/// redefined.
pub fn humaneval_program(code: &CodeTest, completion: &str) -> String {
    format!(
        "{}{}\n{}\ncheck({})\n",
        code.prompt, completion, code.test, code.entry_point
    )
}

/// Runs programs under limits (see the module docs).
#[derive(Debug, Clone)]
pub struct Sandbox {
    config: SandboxConfig,
    isolation: Isolation,
    /// The wrapper commands before the interpreter, e.g. `unshare --net --`.
    wrapper: Vec<OsString>,
    python: PathBuf,
}

impl Sandbox {
    /// A sandbox with `config`, probing which isolation works here (a few
    /// trivial Python runs). Fails if Python cannot be run at all.
    pub fn new(config: SandboxConfig) -> Result<Self> {
        let found = if config.python.components().count() > 1 {
            config.python.clone()
        } else {
            which(&config.python).ok_or_else(|| {
                EvalError::Sandbox(format!("{} not found in PATH", config.python.display()))
            })?
        };
        // The interpreter itself, not a wrapper script (pyenv's shims need
        // their environment, and cost a shell per run).
        let python = Command::new(&found)
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| p.is_absolute() && p.is_file())
            .unwrap_or(found);
        let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let unshare = which(Path::new("unshare"));
        let setpriv = which(Path::new("setpriv"));
        let mut candidates: Vec<(Isolation, Vec<OsString>)> = Vec::new();
        let drop: Vec<OsString> = match (&setpriv, root && config.drop_privileges) {
            (Some(sp), true) => vec![
                sp.into(),
                format!("--reuid={NOBODY}").into(),
                format!("--regid={NOBODY}").into(),
                "--clear-groups".into(),
                "--no-new-privs".into(),
                "--".into(),
            ],
            _ => Vec::new(),
        };
        let user = (!drop.is_empty()).then_some(NOBODY);
        if let (Some(un), true) = (&unshare, config.isolate_network) {
            let net: Vec<OsString> = vec![un.into(), "--net".into(), "--".into()];
            let userns: Vec<OsString> = vec![
                un.into(),
                "--user".into(),
                "--map-root-user".into(),
                "--net".into(),
                "--".into(),
            ];
            if user.is_some() {
                candidates.push((
                    Isolation {
                        network_namespace: true,
                        user,
                    },
                    [net.clone(), drop.clone()].concat(),
                ));
            }
            candidates.push((
                Isolation {
                    network_namespace: true,
                    user: None,
                },
                net,
            ));
            if !root {
                candidates.push((
                    Isolation {
                        network_namespace: true,
                        user: None,
                    },
                    userns,
                ));
            }
        }
        if user.is_some() {
            candidates.push((
                Isolation {
                    network_namespace: false,
                    user,
                },
                drop,
            ));
        }
        candidates.push((
            Isolation {
                network_namespace: false,
                user: None,
            },
            Vec::new(),
        ));

        let mut last = String::new();
        for (isolation, wrapper) in candidates {
            let sandbox = Sandbox {
                config: config.clone(),
                isolation,
                wrapper,
                python: python.clone(),
            };
            match sandbox.run_program("pass\n") {
                Ok(r) if r.passed() => return Ok(sandbox),
                Ok(r) => last = format!("{:?}: {}", r.verdict, r.detail),
                Err(e) => last = e.to_string(),
            }
        }
        Err(EvalError::Sandbox(format!(
            "cannot run {} even without isolation: {last}",
            python.display()
        )))
    }

    /// The isolation in use.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Runs a HumanEval completion with its tests ([`humaneval_program`]).
    pub fn check(&self, code: &CodeTest, completion: &str) -> Result<CheckResult> {
        self.run_program(&humaneval_program(code, completion))
    }

    /// Grades a model's reply to a code problem: its code ([`extract_code`])
    /// as the completion. `truncated`: the reply was cut off by the token
    /// limit.
    pub fn grade(
        &self,
        code: &CodeTest,
        reply: &str,
        truncated: bool,
    ) -> Result<(Grade, CheckResult)> {
        let extracted = extract_code(reply);
        let result = self.check(code, &extracted.text)?;
        let grade = Grade {
            correct: result.passed(),
            truncated,
            extracted: Some(extracted),
        };
        Ok((grade, result))
    }

    /// [`Sandbox::check`] for many completions, [`SandboxConfig::workers`]
    /// at a time; results in the order given.
    pub fn check_many(&self, jobs: &[(&CodeTest, &str)]) -> Vec<Result<CheckResult>> {
        let programs: Vec<String> = jobs.iter().map(|(c, s)| humaneval_program(c, s)).collect();
        self.run_many(&programs)
    }

    /// [`Sandbox::run_program`] for many programs,
    /// [`SandboxConfig::workers`] at a time; results in the order given.
    pub fn run_many(&self, programs: &[String]) -> Vec<Result<CheckResult>> {
        let next = AtomicUsize::new(0);
        let workers = self.config.workers.clamp(1, programs.len().max(1));
        let mut results: Vec<(usize, Result<CheckResult>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(p) = programs.get(i) else { break done };
                            done.push((i, self.run_program(p)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        results.sort_by_key(|r| r.0);
        // A worker that panicked (it cannot, but) loses its results: report
        // them rather than shift the others.
        let mut out: Vec<Result<CheckResult>> = Vec::with_capacity(programs.len());
        let mut it = results.into_iter().peekable();
        for i in 0..programs.len() {
            match it.peek() {
                Some((j, _)) if *j == i => out.push(
                    it.next()
                        .map(|r| r.1)
                        .unwrap_or_else(|| Err(EvalError::Sandbox("lost result".into()))),
                ),
                _ => out.push(Err(EvalError::Sandbox("worker thread failed".into()))),
            }
        }
        out
    }

    /// Runs one Python program (the whole text of `solution.py`) under the
    /// limits. `Err` only when the process cannot be started or watched;
    /// whatever the program does is a [`CheckResult`].
    pub fn run_program(&self, program: &str) -> Result<CheckResult> {
        let dir = tempfile::Builder::new()
            .prefix("tenbits-check-")
            .tempdir()
            .map_err(|e| EvalError::Sandbox(format!("cannot create a temporary directory: {e}")))?;
        let path = dir.path();
        let io = |what: &str, e: std::io::Error| EvalError::Sandbox(format!("{what}: {e}"));
        let nonce = nonce();
        let cpu = self.config.timeout.as_secs_f64().ceil().max(1.0) as u64;
        let guard = GUARD
            .replace("@@CPU@@", &cpu.to_string())
            .replace("@@MEMORY@@", &self.config.memory_bytes.to_string())
            .replace("@@FSIZE@@", &self.config.file_size_bytes.to_string())
            .replace("@@NONCE@@", &nonce);
        for (name, text) in [("guard.py", guard.as_str()), ("solution.py", program)] {
            let p = path.join(name);
            fs::write(&p, text).map_err(|e| io("cannot write the program", e))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
                .map_err(|e| io("cannot set permissions", e))?;
        }
        let stdout_path = path.join(".stdout");
        let stderr_path = path.join(".stderr");
        let stdout = File::create(&stdout_path).map_err(|e| io("cannot create stdout", e))?;
        let stderr = File::create(&stderr_path).map_err(|e| io("cannot create stderr", e))?;
        if let Some(uid) = self.isolation.user {
            std::os::unix::fs::chown(path, Some(uid), Some(uid))
                .map_err(|e| io("cannot hand the temporary directory over", e))?;
        }

        let mut argv: Vec<OsString> = self.wrapper.clone();
        argv.push(self.python.clone().into());
        argv.extend(["-I", "-B", "guard.py"].map(OsString::from));
        let mut path_var = OsString::from("/usr/local/bin:/usr/bin:/bin");
        if let Some(parent) = self.python.parent() {
            let mut p = parent.as_os_str().to_owned();
            p.push(":");
            p.push(&path_var);
            path_var = p;
        }
        let start = Instant::now();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(path)
            .env_clear()
            .env("PATH", path_var)
            .env("HOME", path)
            .env("TMPDIR", path)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                EvalError::Sandbox(format!("cannot start {}: {e}", argv[0].to_string_lossy()))
            })?;
        let pid = child.id();
        let mut timed_out = false;
        let status: ExitStatus = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => {
                    kill_group(pid);
                    let _ = child.wait();
                    return Err(EvalError::Sandbox(format!("cannot watch the checker: {e}")));
                }
            }
            if start.elapsed() >= self.config.timeout {
                timed_out = true;
                kill_group(pid);
                match child.wait() {
                    Ok(s) => break s,
                    Err(e) => {
                        return Err(EvalError::Sandbox(format!("cannot reap the checker: {e}")))
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Anything it left behind in its group.
        kill_group(pid);
        let elapsed = start.elapsed();
        let out = tail(&stdout_path, 256);
        let err = tail(&stderr_path, TAIL_BYTES);
        Ok(classify(
            status,
            timed_out,
            &out,
            err,
            &nonce,
            self.config.timeout,
            elapsed,
        ))
    }
}

fn classify(
    status: ExitStatus,
    timed_out: bool,
    stdout_tail: &str,
    stderr_tail: String,
    nonce: &str,
    timeout: Duration,
    elapsed: Duration,
) -> CheckResult {
    let last = stderr_tail
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let short = |s: &str| {
        if s.chars().count() > DETAIL_CHARS {
            format!("{}…", s.chars().take(DETAIL_CHARS).collect::<String>())
        } else {
            s.to_string()
        }
    };
    let (verdict, detail) = if timed_out {
        (
            Verdict::Timeout,
            format!("no result within {:.1} s", timeout.as_secs_f64()),
        )
    } else if let Some(sig) = status.signal() {
        match sig {
            24 => (Verdict::Timeout, "CPU time limit (SIGXCPU)".to_string()),
            25 => (Verdict::Error, "file size limit (SIGXFSZ)".to_string()),
            9 => (
                Verdict::Error,
                "killed (SIGKILL; out of memory?)".to_string(),
            ),
            s => (Verdict::Error, format!("killed by signal {s}")),
        }
    } else if status.code() == Some(0) {
        if stdout_tail.lines().rev().find(|l| !l.is_empty()) == Some(nonce) {
            (Verdict::Passed, String::new())
        } else {
            (
                Verdict::Error,
                "exited before the tests finished".to_string(),
            )
        }
    } else if last.starts_with("AssertionError") {
        (Verdict::AssertionFailed, short(last))
    } else if last.contains("tenbits sandbox:") {
        (Verdict::Blocked, short(last))
    } else if last.is_empty() {
        (
            Verdict::Error,
            format!("exit status {}", status.code().unwrap_or(-1)),
        )
    } else {
        (Verdict::Error, short(last))
    };
    CheckResult {
        verdict,
        detail,
        stderr_tail,
        elapsed,
    }
}

/// The last `n` bytes of a file, as text (lossy); empty if unreadable.
fn tail(path: &Path, n: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n)));
    let mut buf = Vec::new();
    let _ = f.take(n).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// 128 random bits as hex, from the standard library's per-process random
/// hash keys (no extra dependency); only needs to be unguessable by
/// accident.
fn nonce() -> String {
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        h.finish()
    };
    format!("tenbits-done-{:016x}{:016x}", word(), word())
}

/// The first executable `name` in `PATH`.
fn which(name: &Path) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| {
                fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// SIGKILL to every process in group `pgid` (the checker's own group; it
/// was started as its leader). Errors (no such group) are ignored.
fn kill_group(pgid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill(2) takes two integers and touches no memory of ours;
        // a negative pid names a process group, here the checker's own.
        unsafe {
            kill(-pgid, 9);
        }
    }
}
