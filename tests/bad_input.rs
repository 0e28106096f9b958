//! The bad-input corpus (issue 8): `tests/bad-input/<category>/<case>/`
//! holds one case per directory, its input and an `expect.toml` saying what
//! must happen (tests/bad-input/README.md describes each category). Every
//! case goes through the real binary against real peers — moto for ECR and
//! SQS, a bare repository over `file://` — and every run must end within
//! [`LIMIT`], never panic, and never write anything it should not.
//!
//! A case whose `expect.toml` has `bug = "…"` pins a known bug: it states
//! the correct behaviour, so it fails until the bug is fixed, and the report
//! says so (and, once it passes, asks for the `bug` line to be removed).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use support::*;
use tagwatch::events::{Event, parse};

/// How long one run of the binary may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(20);
/// Cases run at once. The machine has two cores, and a run mostly waits on
/// moto or git.
const THREADS: usize = 3;
/// What the values and tag cases' files hold before a run, unless a case
/// brings its own.
const PLACEHOLDER_VALUES: &str = "image:\n  tag: placeholder\n";

// ---- the corpus -------------------------------------------------------------

/// The case directories of `category`, sorted by name.
fn cases(category: &str) -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad-input")
        .join(category);
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no cases in {}", dir.display());
    found
}

/// A case's `expect.toml`. Unknown keys are refused, so a typo in the
/// corpus cannot quietly turn a check off.
fn expectation<T: DeserializeOwned>(dir: &Path) -> T {
    let path = dir.join("expect.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One case's result: what went wrong, if anything.
struct Verdict {
    case: String,
    why: String,
    bug: Option<String>,
    problems: Vec<String>,
}

/// Runs `check` over `items` on [`THREADS`] threads; verdicts sorted by case.
fn each<T: Sync>(items: &[T], check: impl Fn(&T) -> Verdict + Sync) -> Vec<Verdict> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let verdict = check(item);
                    done.lock().unwrap().push(verdict);
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by(|a, b| a.case.cmp(&b.case));
    done
}

/// A problem that no case may have, known bug or not: a panic, a hang,
/// death by a signal, or a write (marked where they are found).
fn is_hard(problem: &str) -> bool {
    problem.starts_with("HARD ")
}

/// Fails the test with every failing case, known bugs marked as such, and
/// `general` problems (the remote's state after all cases). A known-bug
/// case that passes fails too, so its `bug` line is removed.
fn conclude(category: &str, verdicts: &[Verdict], general: &[String]) {
    let mut report = String::new();
    for problem in general {
        report.push_str(&format!("\n{category}: {problem}\n"));
    }
    let mut failed = 0;
    let mut known = 0;
    for v in verdicts {
        let problems = match (&v.bug, v.problems.is_empty()) {
            (None, true) => continue,
            (Some(_), true) => {
                vec!["passes now: remove the bug line from its expect.toml".to_string()]
            }
            // A known bug still open is reported, not failed: only message
            // wording is pinned this way (see README.md), never a panic, a
            // hang or a write, which fail every case whatever it expects.
            (Some(_), false) if v.problems.iter().all(|p| !is_hard(p)) => {
                known += 1;
                eprintln!(
                    "{category}/{}: KNOWN BUG still open: {}",
                    v.case,
                    v.problems.join("; ")
                );
                continue;
            }
            (_, false) => v.problems.clone(),
        };
        failed += 1;
        report.push_str(&format!("\n{category}/{} ({})\n", v.case, v.why));
        if let Some(bug) = &v.bug {
            report.push_str(&format!("  KNOWN BUG: {bug}\n"));
        }
        for p in problems {
            report.push_str(&format!("  - {}\n", p.replace('\n', "\n    ")));
        }
    }
    eprintln!(
        "{category}: {} cases, {failed} failed, {known} known bugs still open",
        verdicts.len()
    );
    assert!(
        failed == 0 && general.is_empty(),
        "{failed} of {} {category} cases failed:\n{report}",
        verdicts.len()
    );
}

// ---- running the binary -----------------------------------------------------

/// A finished run of tagwatch.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.stdout,
            tail(&self.stderr, 2000)
        )
    }
}

/// The last `n` bytes of `text` (whole characters), for reports.
fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `args` in `cwd`. A hang (killed after [`LIMIT`]), a death by
/// signal, an exit of 101 or a `panicked` anywhere in the output is a
/// problem whatever the case expects.
fn tagwatch_run(args: &[&str], cwd: &Path, problems: &mut Vec<String>) -> Option<Ran> {
    let what = args.first().copied().unwrap_or_default();
    let started = Instant::now();
    let Some(out) = output_within(tagwatch_command().args(args).current_dir(cwd), LIMIT) else {
        problems.push(format!("HARD {what}: hung: killed after {LIMIT:?}"));
        return None;
    };
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if ran.code.is_none() {
        problems.push(format!(
            "HARD {what}: killed by a signal ({})\n{}",
            out.status,
            ran.show()
        ));
    } else if ran.code == Some(101)
        || ran.stderr.contains("panicked")
        || ran.stdout.contains("panicked")
    {
        problems.push(format!("HARD {what}: panicked\n{}", ran.show()));
    }
    let took = started.elapsed();
    if took > LIMIT / 2 {
        problems.push(format!(
            "{what}: took {took:?}, close to the {LIMIT:?} limit"
        ));
    }
    Some(ran)
}

/// Records what `ran` got wrong, if anything, with its output once.
fn judge(what: &str, ran: &Ran, wrong: Vec<String>, problems: &mut Vec<String>) {
    if !wrong.is_empty() {
        problems.push(format!("{what}: {}\n{}", wrong.join("; "), ran.show()));
    }
}

/// Whether some line of `text` starts with `prefix` and holds every needle.
fn has_line(text: &str, prefix: &str, needles: &[&str]) -> bool {
    text.lines()
        .any(|line| line.starts_with(prefix) && needles.iter().all(|n| line.contains(n)))
}

/// `Some` complaint unless the run exited with `code`.
fn exit_is(ran: &Ran, code: i32) -> Option<String> {
    (ran.code != Some(code)).then(|| format!("expected exit {code}"))
}

// ---- git --------------------------------------------------------------------

/// What a seeded repository holds at a path.
enum Entry {
    File(Vec<u8>),
    /// A symlink to this target, as git stores one (mode 120000).
    Symlink(String),
}

/// A bare repository whose branches each hold one root commit with their
/// own files: a case's branch carries only that case's file, so a run
/// fetches nothing else (the huge-file case's 10 MiB stays on its branch),
/// and whatever a run writes lands on its own branch.
fn seed_remote(branches: &[(String, Vec<(String, Entry)>)]) -> GitRemote {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("remote.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let work = dir.path().join("seed");
    git(dir.path(), &["init", "-q", "-b", "seed", "seed"]);
    for (branch, files) in branches {
        git(&work, &["checkout", "-q", "--orphan", branch]);
        // The previous branch's files, in the index and on disk.
        git(&work, &["rm", "-rfq", "--ignore-unmatch", "."]);
        for (path, entry) in files {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            match entry {
                Entry::File(bytes) => std::fs::write(&path, bytes).unwrap(),
                Entry::Symlink(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            }
        }
        git(&work, &["add", "-A"]);
        commit(&work, "seed");
    }
    let mut push = vec!["push", "-q", bare.to_str().unwrap()];
    let specs: Vec<String> = branches
        .iter()
        .map(|(b, _)| format!("refs/heads/{b}:refs/heads/{b}"))
        .collect();
    push.extend(specs.iter().map(String::as_str));
    git(&work, &push);
    // HEAD names a branch that exists, as on a real server.
    let first = format!("refs/heads/{}", branches[0].0);
    git(&bare, &["symbolic-ref", "HEAD", &first]);
    GitRemote { dir }
}

/// Every ref of a repository and what it points at.
fn refs(repo: &Path) -> String {
    git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
}

/// The commit a branch points at.
fn head(repo: &Path, branch: &str) -> String {
    git(repo, &["rev-parse", &format!("refs/heads/{branch}")])
        .trim()
        .to_string()
}

/// A file's bytes on a branch.
fn file_at(repo: &Path, branch: &str, path: &str) -> Vec<u8> {
    let out = Command::new("git")
        .args(["cat-file", "blob", &format!("{branch}:{path}")])
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .output()
        .expect("run git cat-file");
    assert!(
        out.status.success(),
        "git cat-file {branch}:{path}: {}",
        show(&out)
    );
    out.stdout
}

/// A config for `tagwatch once` on `branch` with one app, `app` being the
/// `[[apps]]` table's body (its targets included).
fn once_config(endpoint: &str, git_url: &str, branch: &str, app: &str) -> String {
    format!(
        "interval = \"2m\"\nlisten = \"127.0.0.1:0\"\n\n[aws]\nregion = \"{REGION}\"\nendpoint_url = \"{endpoint}\"\n\n\
         [git]\nurl = \"{git_url}\"\nbranch = \"{branch}\"\ncheckout_dir = \"checkout\"\nauthor = \"tagwatch <tagwatch@acme.dev>\"\n\n\
         [[apps]]\n{app}"
    )
}

// ---- configs ----------------------------------------------------------------

/// `config/<case>/`: a config file (`tagwatch.toml`, with any files it
/// includes) in which `@ENDPOINT@` and `@GIT_URL@` stand for moto and the
/// bare repository, so a config that wrongly passes validation really runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigCase {
    why: String,
    exit: i32,
    /// Each must appear in stderr.
    stderr: Vec<String>,
    #[serde(default)]
    stderr_not: Vec<String>,
    /// The `--config` argument, relative to the case's directory.
    #[serde(default = "default_config")]
    config: String,
    /// Pass `--config` as an absolute path (as `/etc/tagwatch/…` is).
    #[serde(default)]
    absolute_config: bool,
    bug: Option<String>,
}

fn default_config() -> String {
    "tagwatch.toml".into()
}

/// Copies `from` into `to`, replacing the placeholders in `.toml` files
/// byte for byte (a case may hold a BOM, CRLF or invalid UTF-8 on purpose).
fn copy_case(from: &Path, to: &Path, placeholders: &[(&str, &str)]) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name == "expect.toml" {
            continue;
        }
        let dest = to.join(name);
        if path.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_case(&path, &dest, placeholders);
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if path.extension().is_some_and(|e| e == "toml") {
            for (from, to) in placeholders {
                bytes = replace_bytes(&bytes, from.as_bytes(), to.as_bytes());
            }
        }
        std::fs::write(dest, bytes).unwrap();
    }
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Each broken config is refused by `check` and by `once` with the exit
/// status, file, line, key and reason it expects, before any I/O: moto and
/// the repository are real, and nothing reaches them.
#[test]
fn bad_configs_are_refused_with_file_line_and_key() {
    let moto = Moto::start();
    // What a config that slipped through would find: files already at the
    // registry's only tag, so even then nothing would be written.
    moto.seed("payments-api", &[("1.4.0", 1)]);
    moto.seed("orders-api", &[("1.0.0", 1)]);
    let at = |tag: &str| Entry::File(format!("image:\n  tag: {tag}\n").into_bytes());
    let remote = seed_remote(&[(
        "main".into(),
        vec![
            ("envs/dev/values.yaml".into(), at("1.4.0")),
            ("envs/staging/values.yaml".into(), at("1.4.0")),
            ("envs/prod/values.yaml".into(), at("1.4.0")),
            ("envs/dev/orders.yaml".into(), at("1.0.0")),
            ("envs/prod/orders.yaml".into(), at("1.0.0")),
            ("envs/canary/orders.yaml".into(), at("1.0.0")),
        ],
    )]);
    let before = refs(&remote.bare());
    let git_url = remote.file_url();
    let placeholders = [
        ("@ENDPOINT@", moto.endpoint.as_str()),
        ("@GIT_URL@", git_url.as_str()),
    ];

    let verdicts = each(&cases("config"), |(name, dir)| {
        let case: ConfigCase = expectation(dir);
        let mut problems = Vec::new();
        let work = tempfile::tempdir().unwrap();
        copy_case(dir, work.path(), &placeholders);
        let config = if case.absolute_config {
            work.path().join(&case.config).display().to_string()
        } else {
            case.config.clone()
        };
        for command in ["check", "once"] {
            let Some(ran) =
                tagwatch_run(&[command, "--config", &config], work.path(), &mut problems)
            else {
                continue;
            };
            let mut wrong: Vec<String> = exit_is(&ran, case.exit).into_iter().collect();
            for want in &case.stderr {
                if !ran.stderr.contains(want.as_str()) {
                    wrong.push(format!("stderr lacks {want:?}"));
                }
            }
            for unwanted in &case.stderr_not {
                if ran.stderr.contains(unwanted.as_str()) {
                    wrong.push(format!("stderr holds {unwanted:?}"));
                }
            }
            if case.exit == 64 && !ran.stdout.is_empty() {
                wrong.push("printed to stdout".into());
            }
            judge(command, &ran, wrong, &mut problems);
        }
        if refs(&remote.bare()) != before {
            problems.push(format!(
                "HARD the remote changed:\n{}",
                refs(&remote.bare())
            ));
        }
        Verdict {
            case: name.clone(),
            why: case.why,
            bug: case.bug,
            problems,
        }
    });
    let mut general = fsck(&remote.bare());
    if refs(&remote.bare()) != before {
        general.push("the remote changed".into());
    }
    conclude("config", &verdicts, &general);
}

// ---- values files -----------------------------------------------------------

/// `values/<case>/`: a values file the daemon and `tagwatch set` must
/// refuse, and the reason they must give.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValuesCase {
    why: String,
    #[serde(default = "default_key")]
    key: String,
    /// The refusal, as printed after `FILE: KEY: `.
    error: String,
    /// Which entry points see it: `set` and `once`.
    #[serde(default = "both_entry_points")]
    run: Vec<String>,
    /// The stage `once` reports the failure in.
    #[serde(default = "manifest_stage")]
    stage: String,
    /// Must not appear in `once`'s report.
    #[serde(default)]
    once_not: Vec<String>,
    /// The repository holds a symlink to this target instead of a file.
    symlink: Option<String>,
    /// The file is generated rather than stored (too big for the corpus).
    generate: Option<Generate>,
    bug: Option<String>,
}

/// `head`, then `repeat` over and over, cut to exactly `bytes` bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    head: String,
    repeat: String,
    bytes: usize,
}

fn default_key() -> String {
    "image.tag".into()
}

fn both_entry_points() -> Vec<String> {
    vec!["set".into(), "once".into()]
}

fn manifest_stage() -> String {
    "manifest".into()
}

/// The bytes of a values case's file.
fn values_bytes(dir: &Path, case: &ValuesCase) -> Vec<u8> {
    match &case.generate {
        Some(g) => {
            let mut bytes = g.head.clone().into_bytes();
            while bytes.len() < g.bytes {
                bytes.extend_from_slice(g.repeat.as_bytes());
            }
            bytes.truncate(g.bytes);
            bytes
        }
        None => std::fs::read(dir.join("values.yaml")).unwrap(),
    }
}

/// Each broken values file is refused by `tagwatch set` (exit 64, the file
/// untouched) and skipped by `tagwatch once` (exit 1, that app failed with
/// the reason, its branch untouched), with the same reason from both.
#[test]
fn bad_values_files_are_refused_and_the_app_skipped() {
    let all = cases("values");
    let loaded: Vec<(String, PathBuf, ValuesCase)> = all
        .into_iter()
        .map(|(name, dir)| {
            let case = expectation(&dir);
            (name, dir, case)
        })
        .collect();
    let moto = Moto::start();
    moto.seed("payments-api", &[("1.0.0", 1), ("1.1.0", 2)]);
    let mut branches = Vec::new();
    for (name, dir, case) in &loaded {
        let entry = match &case.symlink {
            Some(target) => Entry::Symlink(target.clone()),
            None => Entry::File(values_bytes(dir, case)),
        };
        let mut files = vec![(format!("cases/{name}/values.yaml"), entry)];
        // Where a symlink case's link points: a good file.
        files.push((
            "shared/values.yaml".to_string(),
            Entry::File(b"image:\n  tag: 1.0.0\n".to_vec()),
        ));
        branches.push((name.clone(), files));
    }
    let remote = seed_remote(&branches);
    let seeded = refs(&remote.bare());

    let verdicts = each(&loaded, |(name, dir, case)| {
        let mut problems = Vec::new();
        let work = tempfile::tempdir().unwrap();
        let runs = |entry: &str| case.run.iter().any(|r| r == entry);
        if runs("set") {
            let original = values_bytes(dir, case);
            std::fs::write(work.path().join("values.yaml"), &original).unwrap();
            let args = ["set", "values.yaml", case.key.as_str(), "1.1.0"];
            if let Some(ran) = tagwatch_run(&args, work.path(), &mut problems) {
                let mut wrong: Vec<String> = exit_is(&ran, 64).into_iter().collect();
                let prefix = format!("values.yaml: {}: ", case.key);
                if !has_line(&ran.stderr, &prefix, &[&case.error]) {
                    wrong.push(format!("no stderr line {prefix:?}…{:?}", case.error));
                }
                let changed = std::fs::read(work.path().join("values.yaml")).unwrap() != original;
                judge("set", &ran, wrong, &mut problems);
                if changed {
                    problems.push("HARD set: the file's bytes changed".into());
                }
            }
        }
        if runs("once") {
            let file = format!("cases/{name}/values.yaml");
            let app = format!(
                "name = \"{name}\"\nrepository = \"payments-api\"\nconstraint = \"^1\"\n\n\
                 [[apps.targets]]\nenv = \"dev\"\nfile = \"{file}\"\nkey = '{}'\n",
                case.key
            );
            let config = once_config(&moto.endpoint, &remote.file_url(), name, &app);
            std::fs::write(work.path().join("tagwatch.toml"), config).unwrap();
            let args = ["once", "--config", "tagwatch.toml"];
            let before = head(&remote.bare(), name);
            if let Some(ran) = tagwatch_run(&args, work.path(), &mut problems) {
                let mut wrong: Vec<String> = exit_is(&ran, 1).into_iter().collect();
                let prefix = format!("{name}/dev: failed ({}): ", case.stage);
                if !has_line(&ran.stdout, &prefix, &[&file, &case.error]) {
                    wrong.push(format!(
                        "no stdout line {prefix:?}…{file:?}…{:?}",
                        case.error
                    ));
                }
                for unwanted in &case.once_not {
                    if ran.stdout.contains(unwanted.as_str()) {
                        wrong.push(format!("stdout holds {unwanted:?}"));
                    }
                }
                judge("once", &ran, wrong, &mut problems);
            }
            if head(&remote.bare(), name) != before {
                problems.push(format!("HARD once: wrote to branch {name}"));
            }
        }
        Verdict {
            case: name.clone(),
            why: case.why.clone(),
            bug: case.bug.clone(),
            problems,
        }
    });
    let mut general = fsck(&remote.bare());
    let after = refs(&remote.bare());
    let moved: Vec<&str> = after.lines().filter(|l| !seeded.contains(l)).collect();
    if !moved.is_empty() {
        general.push(format!("refs moved: {moved:?}"));
    }
    conclude("values", &verdicts, &general);
}

// ---- ECR tags ---------------------------------------------------------------

/// `ecr-tags/<case>/`: a tag in ECR that YAML could misread, and the exact
/// scalar that must be written for it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagCase {
    why: String,
    tag: String,
    /// The scalar as written into `image:\n  tag: placeholder\n`; cases with
    /// their own file give its whole expected text in `expected.yaml`.
    written: Option<String>,
    /// The `[[apps]]` policy lines; `strategy = "newest"` if absent (the
    /// tag is pushed after a decoy).
    #[serde(default = "newest")]
    policy: String,
    /// The target's lines besides env and file; `key = "image.tag"` if absent.
    #[serde(default = "image_tag_key")]
    target: String,
    /// The name of the case's file (`values.yaml` if absent).
    #[serde(default = "values_yaml")]
    file: String,
    /// Where serde_norway finds the value in the result.
    #[serde(default = "image_tag_path")]
    read_back: Vec<toml::Value>,
    /// What is promoted instead when `tag` is outside the OCI tag grammar
    /// and so never a candidate (issue 13): `decoy`.
    promoted: Option<String>,
    bug: Option<String>,
}

fn newest() -> String {
    "strategy = \"newest\"".into()
}

fn image_tag_key() -> String {
    "key = \"image.tag\"".into()
}

fn values_yaml() -> String {
    "values.yaml".into()
}

fn image_tag_path() -> Vec<toml::Value> {
    vec!["image".into(), "tag".into()]
}

/// The case's file before and after, as bytes.
fn tag_files(dir: &Path, case: &TagCase) -> (Vec<u8>, Vec<u8>) {
    let input = dir.join(&case.file);
    if input.exists() {
        return (
            std::fs::read(input).unwrap(),
            std::fs::read(dir.join("expected.yaml")).unwrap(),
        );
    }
    let written = case.written.as_deref().unwrap_or_else(|| {
        panic!(
            "{}: give written, or a file and expected.yaml",
            dir.display()
        )
    });
    (
        PLACEHOLDER_VALUES.as_bytes().to_vec(),
        format!("image:\n  tag: {written}\n").into_bytes(),
    )
}

/// Follows `path` (keys and list indexes) in a parsed YAML document.
fn read_back<'v>(
    doc: &'v serde_norway::Value,
    path: &[toml::Value],
) -> Option<&'v serde_norway::Value> {
    path.iter().try_fold(doc, |node, step| match step {
        toml::Value::String(key) => node.get(key.as_str()),
        toml::Value::Integer(i) => node.get(usize::try_from(*i).ok()?),
        _ => None,
    })
}

/// Each tag that YAML could read as a number, boolean, null or timestamp
/// is promoted by `tagwatch once` into exactly the expected bytes, and reads
/// back (through serde_norway, an independent parser) as that very string;
/// tags that need no quotes get none.
#[test]
fn tags_that_look_like_other_yaml_types_are_written_as_strings() {
    let loaded: Vec<(String, PathBuf, TagCase)> = cases("ecr-tags")
        .into_iter()
        .map(|(name, dir)| {
            let case = expectation(&dir);
            (name, dir, case)
        })
        .collect();
    let moto = Moto::start();
    let mut branches = Vec::new();
    for (name, dir, case) in &loaded {
        // The decoy is older, sorts first and is neither a version nor a
        // number: every policy in the corpus passes it over.
        moto.seed(name, &[("decoy", 1_000), (case.tag.as_str(), 2_000)]);
        let (before, _) = tag_files(dir, case);
        let file = format!("cases/{name}/{}", case.file);
        branches.push((name.clone(), vec![(file, Entry::File(before))]));
    }
    let remote = seed_remote(&branches);

    let verdicts = each(&loaded, |(name, dir, case)| {
        let mut problems = Vec::new();
        let work = tempfile::tempdir().unwrap();
        let file = format!("cases/{name}/{}", case.file);
        let app = format!(
            "name = \"{name}\"\nrepository = \"{name}\"\n{}\n\n[[apps.targets]]\nenv = \"dev\"\nfile = \"{file}\"\n{}\n",
            case.policy, case.target
        );
        let config = once_config(&moto.endpoint, &remote.file_url(), name, &app);
        std::fs::write(work.path().join("tagwatch.toml"), config).unwrap();
        let args = ["once", "--config", "tagwatch.toml"];
        let want = case.promoted.as_ref().unwrap_or(&case.tag);
        if let Some(ran) = tagwatch_run(&args, work.path(), &mut problems) {
            let mut wrong: Vec<String> = exit_is(&ran, 0).into_iter().collect();
            let promoted = format!(" -> {want} (commit ");
            if !(ran.stdout.contains(&format!("{name}/dev: promoted "))
                && ran.stdout.contains(&promoted))
            {
                wrong.push(format!("no promotion to {want:?}"));
            }
            judge("once", &ran, wrong, &mut problems);
        }
        let (_, expected) = tag_files(dir, case);
        let after = file_at(&remote.bare(), name, &file);
        if after != expected {
            problems.push(format!(
                "the file holds\n{}\ninstead of\n{}",
                String::from_utf8_lossy(&after),
                String::from_utf8_lossy(&expected)
            ));
        }
        match serde_norway::from_slice::<serde_norway::Value>(&after) {
            Ok(doc) => match read_back(&doc, &case.read_back) {
                Some(serde_norway::Value::String(s)) if s == want => {}
                other => problems.push(format!(
                    "serde_norway reads {other:?} at {:?}, not the string {want:?}",
                    case.read_back
                )),
            },
            Err(e) => problems.push(format!("serde_norway cannot read the result: {e}")),
        }
        let landed = promotions(&remote.bare(), name);
        if landed.len() != 1 || &landed[0].to != want {
            problems.push(format!(
                "expected one promotion to {want:?}, got {landed:?}"
            ));
        }
        Verdict {
            case: name.clone(),
            why: case.why.clone(),
            bug: case.bug.clone(),
            problems,
        }
    });
    conclude("ecr-tags", &verdicts, &fsck(&remote.bare()));
}

// ---- SQS messages -----------------------------------------------------------

/// `sqs/<case>/`: a message `body` and what `events::parse` must make of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqsCase {
    why: String,
    /// `invalid` (with `error`), `other` (valid, needs nothing), `push`
    /// (with `repository` and `tag`) or `scan` (with `repository`).
    outcome: String,
    error: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    /// Also sent to a running daemon in
    /// [`sqs_events_that_need_nothing_write_nothing_and_the_daemon_keeps_running`].
    #[serde(default)]
    e2e: bool,
    bug: Option<String>,
}

fn sqs_cases() -> Vec<(String, String, SqsCase)> {
    cases("sqs")
        .into_iter()
        .map(|(name, dir)| {
            let body = std::fs::read_to_string(dir.join("body")).unwrap();
            let case = expectation(&dir);
            (name, body, case)
        })
        .collect()
}

/// Each message is told apart as the queue's consumer must: garbage is
/// `Err` with a reason (left for the dead-letter queue), valid events that
/// need nothing are `Other`, pushes name their repository and tag.
#[test]
fn sqs_messages_are_classified() {
    let loaded = sqs_cases();
    let verdicts: Vec<Verdict> = loaded
        .iter()
        .map(|(name, body, case)| {
            let got = parse(body);
            let ok = match (case.outcome.as_str(), &got) {
                ("invalid", Err(why)) => case.error.as_deref().is_none_or(|e| why.contains(e)),
                ("other", Ok(Event::Other)) => true,
                ("push", Ok(Event::Push { repository, tag })) => {
                    Some(repository) == case.repository.as_ref() && *tag == case.tag
                }
                // A finished scan wakes its repository (the scan gate).
                ("scan", Ok(Event::Scan { repository, .. })) => {
                    Some(repository) == case.repository.as_ref()
                }
                _ => false,
            };
            let problems = if ok {
                Vec::new()
            } else {
                vec![format!(
                    "expected {} {:?} {:?} {:?}, parse gave {got:?}",
                    case.outcome, case.error, case.repository, case.tag
                )]
            };
            Verdict {
                case: name.clone(),
                why: case.why.clone(),
                bug: case.bug.clone(),
                problems,
            }
        })
        .collect();
    conclude("sqs", &verdicts, &[]);
}

/// The `e2e` messages go to a real queue read by `tagwatch run`: a push of a
/// repository no app watches, replays of tags already promoted or older,
/// and garbage. Nothing is written; the valid messages are deleted and the
/// garbage stays for the dead-letter queue, logged once each; and the
/// daemon still promotes the next real push within seconds.
#[test]
fn sqs_events_that_need_nothing_write_nothing_and_the_daemon_keeps_running() {
    let sent: Vec<(String, String, SqsCase)> = sqs_cases()
        .into_iter()
        .filter(|(.., case)| case.e2e)
        .collect();
    let garbage = sent.iter().filter(|(.., c)| c.outcome == "invalid").count();
    assert!(
        garbage > 0 && garbage < sent.len(),
        "the e2e set needs both kinds"
    );

    let moto = Moto::start();
    moto.seed("payments-api", &[("1.0.0", 1), ("1.1.0", 2)]);
    let queue =
        moto.boto3("print(client('sqs').create_queue(QueueName='tagwatch-events')['QueueUrl'])");
    let remote = GitRemote::new(&[("values.yaml", "image:\n  tag: 1.1.0\n")]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("payments", "payments-api", "^1", "values.yaml")],
    );
    // Polling only hourly: every cycle after the first comes from an event.
    work.edit_config("interval = \"2m\"", "interval = \"1h\"");
    work.edit_config(
        "[git]",
        &format!("[aws.events]\nsqs_queue_url = \"{queue}\"\ndebounce = \"100ms\"\n\n[git]"),
    );
    let log = work.dir.path().join("daemon.log");
    let mut daemon = Daemon::start_with_env(
        &work.config,
        &log,
        &[("AWS_ENDPOINT_URL_SQS", &moto.endpoint)],
    );
    let wait = |what: &str, limit: Duration, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} within {limit:?}; the daemon's log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let logged = |needle: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(needle)
    };
    wait("the daemon starts", Duration::from_secs(30), &|| {
        logged("listening for ECR push events") && logged("cycle finished")
    });
    assert_eq!(remote.subjects(), ["seed"]);

    // Send every message and note the ids SQS gave them.
    let bodies: Vec<&str> = sent.iter().map(|(_, body, _)| body.as_str()).collect();
    let file = work.dir.path().join("bodies.json");
    std::fs::write(&file, serde_json::to_string(&bodies).unwrap()).unwrap();
    let ids = moto.boto3(&format!(
        "q = client('sqs')\n\
         bodies = json.load(open({:?}))\n\
         print(json.dumps([q.send_message(QueueUrl={queue:?}, MessageBody=b)['MessageId'] for b in bodies]))",
        file.display()
    ));
    let ids: Vec<String> = serde_json::from_str(&ids).unwrap();
    let queued = || -> usize {
        moto.boto3(&format!(
            "a = client('sqs').get_queue_attributes(QueueUrl={queue:?}, AttributeNames=['All'])['Attributes']\n\
             print(int(a['ApproximateNumberOfMessages']) + int(a['ApproximateNumberOfMessagesNotVisible']))"
        ))
        .parse()
        .unwrap()
    };
    // The valid messages are deleted once their cycle has finished; the
    // garbage stays. Both mean every message has been read and acted on.
    wait(
        "only the garbage is left in the queue",
        Duration::from_secs(20),
        &|| {
            queued() == garbage
                && sent
                    .iter()
                    .zip(&ids)
                    .filter(|((.., case), _)| case.outcome == "invalid")
                    .all(|(_, id)| logged(id))
        },
    );
    daemon.assert_running();
    let text = std::fs::read_to_string(&log).unwrap();
    let mut problems = Vec::new();
    for ((name, _, case), id) in sent.iter().zip(&ids) {
        let warned = text
            .lines()
            .filter(|l| l.contains("invalid event message") && l.contains(id.as_str()))
            .count();
        let want = usize::from(case.outcome == "invalid");
        if warned != want {
            problems.push(format!(
                "{name}: logged as invalid {warned} times, not {want}"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    assert!(
        count_messages(&text, "push events; reconciling their apps") >= 1,
        "the replays of payments-api woke no cycle:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(
        remote.subjects(),
        ["seed"],
        "an event that needs nothing wrote"
    );
    assert_eq!(remote.show("values.yaml"), "image:\n  tag: 1.1.0\n");

    // Still alive and listening: a real push lands within seconds.
    moto.seed("payments-api", &[("1.2.0", 3)]);
    let push = r#"{"version":"0","id":"e-live","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2026-11-21T10:00:00Z","region":"eu-west-1","resources":[],"detail":{"result":"SUCCESS","repository-name":"payments-api","image-digest":"sha256:ab","action-type":"PUSH","image-tag":"1.2.0"}}"#;
    moto.boto3(&format!(
        "client('sqs').send_message(QueueUrl={queue:?}, MessageBody={push:?})"
    ));
    remote.wait_for_commits(
        2,
        Instant::now() + Duration::from_secs(15),
        "the daemon no longer promotes after the bad messages",
    );
    assert_eq!(remote.subjects(), ["payments: dev 1.1.0 -> 1.2.0", "seed"]);
    assert!(daemon.stop().success(), "tagwatch run did not exit cleanly");
    assert_fsck_clean(&remote.bare());
}
