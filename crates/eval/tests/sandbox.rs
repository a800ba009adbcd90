//! The HumanEval checker: canonical solutions pass (when HumanEval is in the
//! cache), empty bodies fail, loops are stopped, writes outside the
//! temporary directory and sockets fail.

use std::time::{Duration, Instant};

use tenbits_eval::{Gold, Sandbox, SandboxConfig, Verdict};

fn sandbox(timeout: Duration) -> Sandbox {
    let s = Sandbox::new(SandboxConfig {
        timeout,
        ..SandboxConfig::default()
    })
    .unwrap();
    eprintln!("isolation: {:?}", s.isolation());
    s
}

fn run(s: &Sandbox, program: &str) -> tenbits_eval::CheckResult {
    let r = s.run_program(program).unwrap();
    eprintln!(
        "{program:?} -> {:?} {:?} ({:.2?})",
        r.verdict, r.detail, r.elapsed
    );
    r
}

/// HumanEval from the cache, or `None` (with a note) where set-up has not
/// fetched it.
fn humaneval() -> Option<tenbits_eval::Benchmark> {
    match tenbits_eval::humaneval_path() {
        Ok(p) => Some(tenbits_eval::load(p).unwrap()),
        Err(e) => {
            eprintln!("note: {e}; skipping");
            None
        }
    }
}

#[test]
fn canonical_solutions_pass_and_empty_bodies_fail() {
    let Some(bench) = humaneval() else { return };
    assert_eq!(bench.items.len(), 164);
    let s = sandbox(Duration::from_secs(10));
    let codes: Vec<_> = bench
        .items
        .iter()
        .map(|i| match &i.gold {
            Gold::Code(c) => c,
            g => panic!("{g:?}"),
        })
        .collect();
    let start = Instant::now();
    let jobs: Vec<_> = codes.iter().map(|c| (*c, c.canonical.as_str())).collect();
    let results = s.check_many(&jobs);
    eprintln!("164 canonical solutions checked in {:.1?}", start.elapsed());
    let failed: Vec<String> = results
        .iter()
        .zip(&bench.items)
        .filter(|(r, _)| !r.as_ref().is_ok_and(|r| r.passed()))
        .map(|(r, i)| format!("{}: {r:?}", i.id))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");

    // Empty bodies fail, for a sample.
    let sample: Vec<_> = codes
        .iter()
        .step_by(8)
        .map(|c| (*c, "    pass\n"))
        .collect();
    for (r, (c, _)) in s.check_many(&sample).iter().zip(&sample) {
        let r = r.as_ref().unwrap();
        assert!(!r.passed(), "{}: {r:?}", c.entry_point);
        assert!(
            matches!(r.verdict, Verdict::AssertionFailed | Verdict::Error),
            "{r:?}"
        );
    }

    // A whole function as the completion (as chat models reply) works too.
    let c = codes[0];
    let reply = format!("Here it is:\n```python\n{}{}```\n", c.prompt, c.canonical);
    let (grade, r) = s.grade(c, &reply, false).unwrap();
    assert!(grade.correct && r.passed(), "{r:?}");
    let (grade, _) = s
        .grade(
            c,
            "```python\ndef has_close_elements(a, b):\n    return False\n```",
            false,
        )
        .unwrap();
    assert!(!grade.correct);
}

/// The examples parsed from HumanEval's prompts are what the prompts say:
/// the canonical solutions pass nearly all of them, and an empty body
/// passes few.
#[test]
fn canonical_solutions_pass_their_prompts_visible_examples() {
    let Some(bench) = humaneval() else { return };
    let s = sandbox(Duration::from_secs(10));
    // Every fourth problem: enough to see the parser's error rate.
    let (mut with_examples, mut all_pass, mut programs, mut empty) = (0, 0, Vec::new(), Vec::new());
    let (mut counts, mut shown) = (Vec::new(), Vec::new());
    for item in bench.items.iter().step_by(4) {
        let Gold::Code(c) = &item.gold else { panic!() };
        let examples = tenbits_eval::visible_examples(&c.prompt, &c.entry_point);
        if examples.is_empty() {
            continue;
        }
        with_examples += 1;
        counts.push(examples.len());
        shown.push((item.id.clone(), examples.clone()));
        let canonical = format!("{}{}", c.prompt, c.canonical);
        let stub = format!("{}    pass\n", c.prompt);
        for e in &examples {
            programs.push(tenbits_eval::example_program(&canonical, e));
        }
        empty.push(tenbits_eval::example_program(&stub, &examples[0]));
    }
    let passed = |programs: &[String]| {
        let results = s.run_many(programs);
        let mut at = 0;
        counts
            .iter()
            .map(|&n| {
                let ok = results[at..at + n]
                    .iter()
                    .filter(|r| r.as_ref().is_ok_and(|r| r.passed()))
                    .count();
                at += n;
                ok
            })
            .collect::<Vec<_>>()
    };
    let mut wrong = Vec::new();
    for ((ok, n), shown) in passed(&programs).iter().zip(&counts).zip(&shown) {
        all_pass += usize::from(ok == n);
        if ok != n {
            wrong.push(format!("{}: {ok} of {:?}", shown.0, shown.1));
        }
    }
    let empty_passed = s
        .run_many(&empty)
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.passed()))
        .count();
    let total: usize = counts.iter().sum();
    eprintln!(
        "{with_examples} of 41 prompts show examples ({total} in all); the canonical solution \
         passes all of them on {all_pass}; an empty body passes the first on {empty_passed}"
    );
    assert!(with_examples >= 27, "{with_examples}");
    assert!(
        all_pass * 10 >= with_examples * 9,
        "{all_pass} of {with_examples}: {wrong:#?}"
    );
    // An empty body passes the first example of few.
    assert!(
        empty_passed * 5 < with_examples,
        "{empty_passed} of {with_examples}"
    );
}

#[test]
fn passing_failing_and_broken_programs() {
    let s = sandbox(Duration::from_secs(10));
    assert_eq!(run(&s, "assert 1 + 1 == 2\n").verdict, Verdict::Passed);
    let r = run(
        &s,
        "def check(c):\n    assert c() == 2, 'wrong'\ncheck(lambda: 1)\n",
    );
    assert_eq!(
        (r.verdict, r.detail.as_str()),
        (Verdict::AssertionFailed, "AssertionError: wrong")
    );
    let r = run(&s, "def f(:\n");
    assert_eq!(r.verdict, Verdict::Error);
    assert!(r.detail.starts_with("SyntaxError"), "{r:?}");
    let r = run(&s, "raise KeyError('k')\n");
    assert_eq!(
        (r.verdict, r.detail.as_str()),
        (Verdict::Error, "KeyError: 'k'")
    );
    // Exiting early is not passing.
    for p in [
        "import sys\nsys.exit(0)\nassert False\n",
        "import os\nos._exit(0)\n",
        "exit()\n",
    ] {
        let r = run(&s, p);
        assert_eq!(r.verdict, Verdict::Error, "{p}");
    }
    // Memory is bounded.
    let r = run(&s, "x = bytearray(3 << 30)\n");
    assert_eq!(r.verdict, Verdict::Error);
    assert!(r.detail.contains("MemoryError"), "{r:?}");
    // Writes inside its own directory are fine, and it starts there.
    let r = run(
        &s,
        "import os, pathlib\nopen('a.txt', 'w').write('x')\nos.mkdir('d')\npathlib.Path('d/b').write_text('y')\n\
         os.rename('a.txt', 'd/a')\nos.remove('d/a')\nimport shutil\nshutil.rmtree('d')\n\
         import tempfile\nwith tempfile.NamedTemporaryFile() as f:\n    f.write(b'z')\n",
    );
    assert_eq!(r.verdict, Verdict::Passed, "{r:?}");
}

#[test]
fn loops_are_stopped() {
    let s = sandbox(Duration::from_secs(2));
    for p in [
        "while True:\n    pass\n",
        "import time\nwhile True:\n    time.sleep(1)\n",
    ] {
        let start = Instant::now();
        let r = run(&s, p);
        assert_eq!(r.verdict, Verdict::Timeout, "{p}");
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn writes_outside_fail() {
    let s = sandbox(Duration::from_secs(10));
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "keep").unwrap();
    let o = outside.path().display();
    let programs = [
        format!("open('{o}/new.txt', 'w').write('x')\n"),
        format!("open('{o}/victim.txt', 'a').write('x')\n"),
        format!("import os\nos.open('{o}/new.txt', os.O_WRONLY | os.O_CREAT)\n"),
        format!("import pathlib\npathlib.Path('{o}/new.txt').write_text('x')\n"),
        format!("import pathlib\npathlib.Path('{o}/new.txt').touch()\n"),
        format!("import io\nio.FileIO('{o}/new.txt', 'w')\n"),
        format!("import os\nos.remove('{o}/victim.txt')\n"),
        format!("import os\nos.rename('{o}/victim.txt', 'here.txt')\n"),
        format!("import os\nos.mkdir('{o}/d')\n"),
        format!("import os\nos.chmod('{o}/victim.txt', 0o777)\n"),
        format!("import shutil\nshutil.rmtree('{o}')\n"),
        format!("import shutil\nshutil.copy('guard.py', '{o}/new.txt')\n"),
        format!("import os\nos.symlink('{o}/victim.txt', 'link')\nopen('link', 'w').write('x')\n"),
        format!("import os\nos.chdir('{o}')\nopen('new.txt', 'w').write('x')\n"),
        "import os\nos.system('touch /tmp/tenbits-sandbox-escape')\n".to_string(),
        "import subprocess\nsubprocess.run(['true'])\n".to_string(),
        "import os\nos.fork()\n".to_string(),
        "import ctypes\n".to_string(),
    ];
    for p in &programs {
        let r = run(&s, p);
        assert!(!r.passed(), "{p}: {r:?}");
        if !p.starts_with("import ctypes") {
            assert_eq!(r.verdict, Verdict::Blocked, "{p}: {r:?}");
        }
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    let left: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("victim.txt")]);
    assert!(!std::path::Path::new("/tmp/tenbits-sandbox-escape").exists());
}

#[test]
fn sockets_fail() {
    let s = sandbox(Duration::from_secs(10));
    for p in [
        "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))\n",
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n",
        "import _socket\n_socket.socket()\n",
        "import socket\nsocket.getaddrinfo('localhost', 80)\n",
        "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/', timeout=1)\n",
    ] {
        let r = run(&s, p);
        assert!(!r.passed(), "{p}: {r:?}");
        assert_eq!(r.verdict, Verdict::Blocked, "{p}: {r:?}");
    }
}

/// The OS-level layers, where this system grants them.
#[test]
fn os_isolation_where_available() {
    let mut sandboxes = vec![sandbox(Duration::from_secs(10))];
    // The default interpreter may be one `nobody` cannot run (pyenv under
    // /root); the system's can be.
    if std::path::Path::new("/usr/bin/python3").is_file() {
        let config = SandboxConfig {
            python: "/usr/bin/python3".into(),
            ..SandboxConfig::default()
        };
        let s = Sandbox::new(config).unwrap();
        eprintln!("/usr/bin/python3 isolation: {:?}", s.isolation());
        sandboxes.push(s);
    }
    for s in &sandboxes {
        os_layers(s);
    }
}

fn os_layers(s: &Sandbox) {
    let iso = s.isolation();
    if iso.network_namespace {
        // Only the loopback interface.
        let r = run(
            s,
            "names = [l.split(':')[0].strip() for l in open('/proc/self/net/dev').readlines()[2:]]\n\
             assert names == ['lo'], names\n",
        );
        assert_eq!(r.verdict, Verdict::Passed, "{r:?}");
    } else {
        eprintln!("note: no network namespace here");
    }
    if let Some(uid) = iso.user {
        let r = run(
            s,
            &format!("import os\nassert os.getuid() == {uid} and os.getgid() == {uid}\n"),
        );
        assert_eq!(r.verdict, Verdict::Passed, "{r:?}");
        // Root's files stay closed even to a program that gets around the
        // Python guards (here: the original FileIO, saved by the guard).
        let r = run(
            s,
            "import _io\nf = _io.FileIO.__mro__[1]('/etc/tenbits-escape', 'w')\n",
        );
        assert!(!r.passed(), "{r:?}");
        assert!(!std::path::Path::new("/etc/tenbits-escape").exists());
    } else {
        eprintln!("note: the program runs as the caller");
    }
}
