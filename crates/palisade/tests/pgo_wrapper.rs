//! scripts/rustc-pgo, the rustc wrapper that `cargo build --release` runs every compilation
//! through (.cargo/config.toml): which calls get the committed profile, and that every other
//! call reaches rustc exactly as cargo made it. A stand-in `rustc` prints what it was given.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A copy of the wrapper in a directory of its own, with a profile and toolchain file beside
/// it as in the repository (`scripts/`, `pgo/`), and a stand-in rustc whose `-vV` names
/// `commit`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(toolchain_commit: Option<&str>, commit: &str) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("scripts")).expect("scripts dir");
        std::fs::copy(
            repository().join("scripts/rustc-pgo"),
            dir.path().join("scripts/rustc-pgo"),
        )
        .expect("copy the wrapper");
        if let Some(toolchain) = toolchain_commit {
            std::fs::create_dir(dir.path().join("pgo")).expect("pgo dir");
            std::fs::write(dir.path().join("pgo/palisade.profdata"), b"profile").expect("profile");
            std::fs::write(
                dir.path().join("pgo/toolchain"),
                format!("rustc 1.0.0\nbinary: rustc\ncommit-hash: {toolchain}\nhost: x\n"),
            )
            .expect("toolchain");
        }
        let rustc = dir.path().join("rustc");
        std::fs::write(
            &rustc,
            format!(
                "#!/bin/sh\nif [ \"$1\" = -vV ]; then printf 'rustc 1.0.0\\ncommit-hash: \
                 {commit}\\n'; exit 0; fi\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n"
            ),
        )
        .expect("stand-in rustc");
        std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755))
            .expect("stand-in rustc runs");
        Setup { dir }
    }

    /// `sh`, with `PALISADE_PGO` set to `pgo` or unset, to run the wrapper.
    fn shell(pgo: Option<&str>) -> Command {
        let mut command = Command::new("sh");
        command.env_remove("PALISADE_PGO");
        if let Some(value) = pgo {
            command.env("PALISADE_PGO", value);
        }
        command
    }

    fn run(&self, pgo: Option<&str>, args: &[&str]) -> Output {
        Self::shell(pgo)
            .arg(self.dir.path().join("scripts/rustc-pgo"))
            .arg(self.dir.path().join("rustc"))
            .args(args)
            .output()
            .expect("runs the wrapper")
    }

    /// The arguments the stand-in rustc received.
    fn passed(&self, pgo: Option<&str>, args: &[&str]) -> Vec<String> {
        received(&self.run(pgo, args))
    }

    /// `args` as they reach rustc with the profile added.
    fn profiled(&self, args: &[&str]) -> Vec<String> {
        let pgo = self.dir.path().join("pgo").canonicalize().expect("pgo dir");
        let profile = format!("-Cprofile-use={}/palisade.profdata", pgo.display());
        with(args, &[&profile, "-Cllvm-args=-no-pgo-warn-mismatch"])
    }
}

/// The arguments the stand-in rustc printed, one a line, once the wrapper succeeded.
fn received(output: &Output) -> Vec<String> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

const OPTIMISED: [&str; 6] = [
    "--crate-name",
    "hyper",
    "--edition=2021",
    "src/lib.rs",
    "-C",
    "opt-level=3",
];

fn with(args: &[&str], extra: &[&str]) -> Vec<String> {
    args.iter().chain(extra).map(|a| (*a).to_owned()).collect()
}

#[test]
fn optimised_compilations_get_the_profile_when_the_toolchain_made_it() {
    let setup = Setup::new(Some("abc123"), "abc123");
    assert_eq!(setup.passed(None, &OPTIMISED), setup.profiled(&OPTIMISED));
    // Every spelling of the option; the last `opt-level` is the one rustc uses.
    for args in [
        &["--crate-name", "hyper", "-Copt-level=3"][..],
        &["--crate-name", "hyper", "--codegen", "opt-level=3"],
        &["--crate-name", "hyper", "--codegen=opt-level=3"],
        &[
            "--crate-name",
            "hyper",
            "-C",
            "opt-level=0",
            "-C",
            "opt-level=3",
        ],
        // Directories named like options are not options.
        &[
            "--crate-name",
            "hyper",
            "-C",
            "opt-level=3",
            "-L",
            "profile-generate-dir",
        ],
    ] {
        assert_eq!(setup.passed(None, args), setup.profiled(args), "{args:?}");
    }
    for args in [
        &[
            "--crate-name",
            "hyper",
            "-C",
            "opt-level=3",
            "-C",
            "opt-level=0",
        ][..],
        &["--crate-name", "hyper", "--cfg", "opt-level=3"],
    ] {
        assert_eq!(setup.passed(None, args), with(args, &[]), "{args:?}");
    }
    // A path that holds the words is no request for a profile of its own.
    let in_a_directory = [
        "--crate-name",
        "hyper",
        "/home/ann/profile-use-notes/src/lib.rs",
        "-C",
        "opt-level=3",
    ];
    assert_eq!(
        setup.passed(None, &in_a_directory),
        setup.profiled(&in_a_directory)
    );
    // The binary itself is also told, for `--version`.
    let binary = [
        "--crate-name",
        "palisade",
        "src/main.rs",
        "-C",
        "opt-level=3",
    ];
    let mut expected = setup.profiled(&binary);
    expected.extend(["--cfg".to_owned(), "palisade_pgo".to_owned()]);
    assert_eq!(setup.passed(None, &binary), expected);
}

#[test]
fn every_other_call_reaches_rustc_unchanged() {
    let setup = Setup::new(Some("abc123"), "abc123");
    // Unoptimised (tests, build scripts, procedural macros), cargo's probes, and a call that
    // names a profile itself.
    for args in [
        &["--crate-name", "hyper", "src/lib.rs", "-C", "debuginfo=2"][..],
        &["-", "--crate-name", "___", "--print=file-names"],
        &["-vV"],
        &[
            "--crate-name",
            "x",
            "-C",
            "opt-level=3",
            "-Cprofile-use=/elsewhere",
        ],
        &[
            "--crate-name",
            "x",
            "-C",
            "opt-level=3",
            "-Cprofile-generate=/tmp/p",
        ],
        &[
            "--crate-name",
            "x",
            "-C",
            "opt-level=3",
            "-C",
            "profile-use=/elsewhere",
        ],
        &[
            "--crate-name",
            "x",
            "-C",
            "opt-level=3",
            "--codegen=profile-use=/elsewhere",
        ],
        // Spaces and quotes in arguments survive the wrapper.
        &[
            "--crate-name",
            "x",
            "--cfg",
            "feature=\"a b\"",
            "-C",
            "opt-level=2",
        ],
    ] {
        let expected: Vec<String> = if args == ["-vV"] {
            vec!["rustc 1.0.0".into(), "commit-hash: abc123".into()]
        } else {
            with(args, &[])
        };
        assert_eq!(setup.passed(None, args), expected, "{args:?}");
    }
    assert_eq!(setup.passed(Some("off"), &OPTIMISED), with(&OPTIMISED, &[]));
}

#[test]
fn another_toolchain_or_no_profile_builds_the_plain_binary() {
    let other = Setup::new(Some("abc123"), "def456");
    assert_eq!(other.passed(None, &OPTIMISED), with(&OPTIMISED, &[]));
    let none = Setup::new(None, "abc123");
    assert_eq!(none.passed(None, &OPTIMISED), with(&OPTIMISED, &[]));
}

#[test]
fn the_instrumented_build_writes_profiles_where_asked() {
    let setup = Setup::new(Some("abc123"), "abc123");
    assert_eq!(
        setup.passed(Some("generate=/tmp/profiles"), &OPTIMISED),
        with(&OPTIMISED, &["-Cprofile-generate=/tmp/profiles"])
    );
    // Unoptimised compilations are not instrumented.
    let build_script = ["--crate-name", "build_script_build", "build.rs"];
    assert_eq!(
        setup.passed(Some("generate=/tmp/profiles"), &build_script),
        with(&build_script, &[])
    );
}

/// Run by a relative path with `CDPATH` set, `cd` would print the directory it chose into
/// the profile's path.
#[test]
fn cdpath_does_not_change_the_profile_path() {
    let setup = Setup::new(Some("abc123"), "abc123");
    let output = Setup::shell(None)
        .current_dir(setup.dir.path())
        .arg("scripts/rustc-pgo")
        .arg(setup.dir.path().join("rustc"))
        .args(OPTIMISED)
        .env("CDPATH", setup.dir.path())
        .output()
        .expect("runs the wrapper");
    assert_eq!(received(&output), setup.profiled(&OPTIMISED));
}

#[test]
fn a_mistyped_setting_is_refused_and_named() {
    let setup = Setup::new(Some("abc123"), "abc123");
    for value in ["on", "generate=", "generate=relative/dir", "OFF", "bad\\cX"] {
        let output = setup.run(Some(value), &OPTIMISED);
        assert_eq!(output.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("PALISADE_PGO") && stderr.contains(&format!("'{value}'")),
            "{value}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{value}: rustc ran");
    }
}

/// The committed profile is one LLVM can read (an indexed profile, not a Git LFS pointer
/// or a raw profile), and the toolchain file names a compiler.
#[test]
fn the_committed_profile_is_an_indexed_profile_with_its_toolchain() {
    let pgo = repository().join("pgo");
    let profile = std::fs::read(pgo.join("palisade.profdata")).expect("pgo/palisade.profdata");
    assert_eq!(
        profile.get(..8),
        Some(&b"\xfflprofi\x81"[..]),
        "not an indexed LLVM profile"
    );
    let toolchain = std::fs::read_to_string(pgo.join("toolchain")).expect("pgo/toolchain");
    let commit = toolchain
        .lines()
        .find_map(|line| line.strip_prefix("commit-hash: "))
        .expect("a commit-hash line");
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{commit}"
    );
    // scripts/pgo-status reads the trained sources as `sha256sum` lines, sorted by path.
    let sources = std::fs::read_to_string(pgo.join("sources")).expect("pgo/sources");
    let paths: Vec<&str> = sources
        .lines()
        .map(|line| {
            let (hash, path) = line.split_once("  ").expect("HASH  PATH");
            assert!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "{line}"
            );
            path
        })
        .collect();
    assert!(paths.contains(&"Cargo.lock") && paths.contains(&"crates/palisade/src/main.rs"));
    assert!(paths.is_sorted(), "pgo/sources is not sorted by path");
}
