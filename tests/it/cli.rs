//! Conventions every subcommand shares: exit codes, errors as JSON under `--json`, `NO_COLOR`.

use std::process::Command;

use crate::util::{TestDir, small_recipe};
use serde_json::Value;

/// Each subcommand, reading a path that does not exist.
fn with_missing_input() -> Vec<Vec<&'static str>> {
    vec![
        vec!["check", "missing.yaml"],
        vec!["plan", "missing.yaml"],
        vec!["build", "missing.yaml", "--out", "out"],
        vec!["diff", "missing.yaml", "missing.yaml"],
        vec!["verify", "missing"],
        vec!["audit", "missing"],
        vec!["inspect", "missing"],
        vec!["stream", "missing"],
    ]
}

/// The single JSON object on stdout, with every key of the error shape.
fn error_doc(stdout: &str) -> Value {
    let doc: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    for key in ["message", "location", "causes", "diagnostics"] {
        assert!(doc["error"].get(key).is_some(), "no error.{key}: {doc}");
    }
    doc
}

#[test]
fn a_missing_input_exits_2_naming_the_path_for_every_subcommand() {
    let dir = TestDir::new();
    for args in with_missing_input() {
        let out = dir.run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("error: cannot read missing")
                && out.stderr.contains("check the path"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{args:?}");
    }
}

#[test]
fn under_json_a_missing_input_is_one_json_error_on_stdout() {
    let dir = TestDir::new();
    for mut args in with_missing_input() {
        args.push("--json");
        let out = dir.run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        let doc = error_doc(&out.stdout);
        assert_eq!(doc["exit_code"], 2, "{args:?}: {doc}");
        assert!(
            doc["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cannot read missing")),
            "{args:?}: {doc}"
        );
        assert!(
            doc["error"]["location"]
                .as_str()
                .is_some_and(|l| l.starts_with("missing")),
            "{args:?}: {doc}"
        );
    }
}

#[test]
fn under_json_an_invalid_recipe_is_one_json_error_located_at_its_first_error() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe().replace("seed: 7", "sede: 7"));
    let out = dir.run(&["plan", "r.yaml", "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc = error_doc(&out.stdout);
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["error"]["location"], "r.yaml:3:1");
    assert_eq!(doc["error"]["message"], "r.yaml: 1 error in the recipe");
    let first = &doc["error"]["diagnostics"][0];
    assert_eq!(first["message"], "unknown key `sede` in the recipe");
    assert_eq!(first["hint"], "did you mean `seed`?");
    // The text still goes to stderr.
    assert!(
        out.stderr.contains("error: unknown key `sede`"),
        "{}",
        out.stderr
    );
}

#[test]
fn under_json_a_bad_argument_is_one_json_error_on_stdout() {
    let dir = TestDir::new();
    let out = dir.run(&["verify", ".", "--json", "--no-such-flag"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let doc = error_doc(&out.stdout);
    assert_eq!(doc["exit_code"], 2);
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--no-such-flag")),
        "{doc}"
    );
    // Help is no error: no JSON.
    let help = dir.run(&["verify", "--help", "--json"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.starts_with("Check shards"), "{}", help.stdout);
}

#[test]
fn every_positional_argument_has_help_text() {
    let dir = TestDir::new();
    for (command, argument) in [
        ("check", "<RECIPES>..."),
        ("plan", "<RECIPE>"),
        ("build", "<RECIPE>"),
        ("diff", "<BEFORE>"),
        ("diff", "<AFTER>"),
        ("verify", "<DIR>"),
        ("audit", "<DIR>"),
        ("inspect", "<PATH>"),
        ("stream", "<DIRS>..."),
    ] {
        // `-h`: the short help puts each argument's text on its line (`--help` on the next one).
        let out = dir.run(&[command, "-h"]);
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(argument))
            .unwrap_or_else(|| panic!("{command}: no {argument} in {}", out.stdout));
        assert!(
            line.trim_start().len() > argument.len() + 2,
            "{command} {argument} has no help: {line:?}"
        );
    }
}

/// `verify` and `audit` show a bar over the rows they check while stderr is a terminal, and
/// nothing when it is not (piped output, CI logs).
#[test]
fn verify_and_audit_show_progress_on_a_terminal_only() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let built = dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    for (command, verb) in [("verify", "verifying"), ("audit", "auditing")] {
        let piped = dir.run(&[command, "out"]);
        assert_eq!(piped.code, 0, "{}", piped.stderr);
        assert!(!piped.stderr.contains(verb), "{}", piped.stderr);
        if Command::new("script").arg("--version").output().is_err() {
            eprintln!("skipped: no `script` to run {command} on a pseudo-terminal");
            return;
        }
        let line = format!("{} {command} out", env!("CARGO_BIN_EXE_mixtape"));
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(dir.root())
            .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
            .output()
            .expect("run script");
        assert!(out.status.success(), "{out:?}");
        let terminal = String::from_utf8_lossy(&out.stdout);
        assert!(terminal.contains(verb), "{command}: {terminal}");
        assert!(terminal.contains("rows"), "{command}: {terminal}");
    }
}

/// `inspect` colours loss tokens on a terminal, and `NO_COLOR` turns that off. A terminal needs a
/// pseudo-terminal: util-linux `script` provides one.
#[test]
fn no_color_keeps_ansi_escapes_out_of_terminal_output() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let built = dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to run inspect on a pseudo-terminal");
        return;
    }
    let on_terminal = |no_color: Option<&str>| {
        let command = format!("{} inspect out/warmup", env!("CARGO_BIN_EXE_mixtape"));
        let mut script = Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .current_dir(dir.root())
            .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        let out = script.output().expect("run script");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        on_terminal(None).contains("\x1b[32m"),
        "a terminal is coloured"
    );
    let plain = on_terminal(Some("1"));
    assert!(!plain.contains('\x1b'), "{plain}");
    assert!(
        plain.contains('⟦'),
        "loss tokens are marked instead: {plain}"
    );
}

/// A reader that stops early (`| head`) ends the command quietly, by SIGPIPE as it ends `cat`: no
/// panic on the closed pipe, whatever is left to print.
#[cfg(unix)]
#[test]
fn a_pipe_closed_early_ends_the_command_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let built = dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mixtape"))
        // Far more lines than a pipe's buffer holds, so that the command is still writing.
        .args(["stream", "out", "--order", "--epochs", "1000"])
        .current_dir(dir.root())
        .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mixtape");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty(), "no first line");
    // The read end is dropped here: the next writes meet a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    const SIGPIPE: i32 = 13;
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{:?}", out.status);
}
