//! Every `palisade.toml` example in the README and in docs/ passes `palisade check`, so the
//! documentation cannot drift from the configuration palisade accepts. Examples may name
//! files that exist only on the operator's machine (a GeoIP database, a secret file): an
//! error saying such a file is missing is the one error allowed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root, two levels above this crate.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Markdown files users read: the README and everything in docs/.
fn documents() -> Vec<PathBuf> {
    let root = repository();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The bodies of the ```toml blocks of `text`, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match &mut open {
            None if line.trim_start() == "```toml" => open = Some((number + 2, String::new())),
            None => {}
            Some(_) if line.trim_start() == "```" => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn every_documented_configuration_example_passes_check() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut checked = 0;
    let mut failures = Vec::new();
    for document in documents() {
        let text = std::fs::read_to_string(&document).expect("a readable document");
        for (line, body) in toml_blocks(&text) {
            let file = scratch.path().join(format!("example-{checked}.toml"));
            std::fs::write(&file, &body).expect("write the example");
            checked += 1;
            let mut check = Command::new(env!("CARGO_BIN_EXE_palisade"));
            check.arg("check").arg("--config").arg(&file);
            // The examples alone decide: no Redis URL or secret from this machine's environment.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("PALISADE_") {
                    check.env_remove(name);
                }
            }
            let output = check.output().expect("palisade check runs");
            if output.status.success() {
                continue;
            }
            let said = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            let errors: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
            let only_missing_files = !errors.is_empty()
                && errors
                    .iter()
                    .all(|error| error.contains("no such file or directory"));
            if !only_missing_files {
                let origin = document.strip_prefix(repository()).unwrap_or(&document);
                failures.push(format!("{}:{line}:\n{said}", origin.display()));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} toml examples found: is the extraction broken?"
    );
    assert!(
        failures.is_empty(),
        "documented examples that palisade check refuses:\n{}",
        failures.join("\n")
    );
}

#[test]
fn toml_blocks_are_read_whole_and_other_blocks_skipped() {
    let text = "intro\n```toml\n[server]\nworkers = 2\n```\n```sh\nls\n```\n```toml\na = 1\n```\n";
    assert_eq!(
        toml_blocks(text),
        [
            (3, "[server]\nworkers = 2\n".to_owned()),
            (10, "a = 1\n".to_owned())
        ]
    );
}
