//! The lines install.sh writes for shells (the marked lines in ~/.bashrc,
//! conf.d/bgrun.fish) under a HOME that needs quoting, and what it does
//! with a bgrun.fish it did not write: a dangling symlink, a user's own
//! file, forced or not.

use super::{binaries, in_home, succeeded};
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A HOME with a space, a `'`, a `$` and a `\` in its path.
fn odd_home(env: &Env) -> PathBuf {
    let home = env.root.join("a b$c'd\\e");
    std::fs::create_dir_all(&home).expect("making the odd HOME");
    home
}

/// `program` as in `in_home`, but with HOME at `home` and only the
/// system's PATH.
fn at(env: &Env, home: &Path, program: &str) -> Command {
    let mut c = in_home(env, program);
    c.env("HOME", home).env("PATH", "/usr/bin:/bin");
    c
}

fn install_at(env: &Env, home: &Path, args: &[&str]) -> Output {
    at(env, home, "bash").arg(repo().join("install.sh")).args(args).output().expect("running install.sh")
}

fn login_shell() -> String {
    let user = stdout(&Command::new("id").arg("-un").output().expect("running id")).trim().to_string();
    let entry = stdout(&Command::new("getent").args(["passwd", &user]).output().expect("running getent"));
    entry.trim_end().rsplit(':').next().unwrap_or("").to_string()
}

#[test]
fn under_a_home_with_a_space_a_quote_and_a_dollar_bash_finds_run_and_uninstall_takes_the_lines_out() {
    let login = login_shell();
    if !need(
        login.ends_with("/bash"),
        &format!("this user's login shell is {login:?}, and install.sh writes ~/.bashrc only for bash"),
        "as a user whose login shell is bash",
    ) {
        return;
    }
    let env = Env::new();
    let home = odd_home(&env);
    let rc = home.join(".bashrc");
    write(&rc, "export MINE=1\n");
    let bins = binaries(&env);
    succeeded(&install_at(&env, &home, &["--no-build", bins.to_str().expect("a UTF-8 path")]), "install.sh");
    // What bash reads for `ssh host run`: ~/.bashrc, with no terminal
    // (sourced here: bash would expand the `$` of a BASH_ENV). Zsh reads
    // the same line from ~/.zshenv.
    let run = home.join(".cargo/bin/run").display().to_string();
    for (shell, find) in [("bash", "type -P run"), ("zsh", "whence -p run")] {
        if shell == "zsh" && !on_path("zsh") {
            continue;
        }
        let script = format!(". \"$HOME/.bashrc\"; {find}");
        let out = at(&env, &home, shell).args(["-c", &script]).output().expect("running the shell");
        assert_eq!(stdout(&out).trim(), run, "{shell} does not find run: {}", stderr(&out));
    }

    succeeded(&install_at(&env, &home, &["--uninstall"]), "install.sh --uninstall");
    assert_eq!(std::fs::read_to_string(&rc).expect("~/.bashrc"), "export MINE=1\n", "the lines are still there");
}

#[test]
fn under_a_home_with_a_space_a_quote_and_a_dollar_fish_finds_run_and_uninstall_removes_bgrun_fish() {
    if !need_tool("fish") {
        return;
    }
    let env = Env::new();
    let home = odd_home(&env);
    std::fs::create_dir_all(home.join(".config/fish")).expect("making ~/.config/fish");
    let conf = home.join(".config/fish/conf.d/bgrun.fish");
    let bins = binaries(&env);
    succeeded(&install_at(&env, &home, &["--no-build", bins.to_str().expect("a UTF-8 path")]), "install.sh");
    let out = at(&env, &home, "fish").args(["-l", "-c", "command -s run; string join \\n $PATH"]).output();
    let out = out.expect("running fish");
    let text = stdout(&out);
    let run = home.join(".cargo/bin/run").display().to_string();
    assert_eq!(text.lines().next(), Some(run.as_str()), "fish does not find run: {text}{}", stderr(&out));
    // Once on PATH, whole: no pieces of the path split at the space.
    let bin = home.join(".cargo/bin").display().to_string();
    let root = env.root.display().to_string();
    let ours: Vec<&str> = text.lines().skip(1).filter(|d| d.starts_with(&root) || d.contains("b$c")).collect();
    assert_eq!(ours, [bin.as_str()], "fish's PATH: {text}");

    succeeded(&install_at(&env, &home, &["--uninstall"]), "install.sh --uninstall");
    assert!(!conf.exists(), "uninstall left {}", conf.display());
}

#[test]
fn a_dangling_symlink_where_install_would_write_is_left_alone_without_force_and_kept_by_uninstall() {
    let env = Env::new();
    let bins = binaries(&env);
    let bins = bins.to_str().expect("a UTF-8 path");
    let conf = env.home.join(".config/fish/conf.d/bgrun.fish");
    std::fs::create_dir_all(conf.parent().expect("a parent")).expect("making conf.d");
    std::os::unix::fs::symlink("/nonexistent/dotfiles/bgrun.fish", &conf).expect("making the link");

    // A completion's place: the install is refused, naming it.
    let completion = env.home.join(".local/share/bash-completion/completions/runs");
    std::fs::create_dir_all(completion.parent().expect("a parent")).expect("making completions/");
    std::os::unix::fs::symlink("/nonexistent/dotfiles/runs", &completion).expect("making the link");
    let out = super::install(&env, &["--no-build", bins]);
    assert!(!out.status.success(), "install.sh replaced a dangling symlink: {}", stdout(&out));
    assert!(stderr(&out).contains(&completion.display().to_string()), "{}", stderr(&out));
    assert!(completion.is_symlink(), "the refused install removed the link");
    std::fs::remove_file(&completion).expect("removing the link");

    // conf.d/bgrun.fish: installed around it, and the link stays.
    let out = super::install(&env, &["--no-build", bins]);
    succeeded(&out, "install.sh");
    assert!(stdout(&out).contains("left alone"), "{}", stdout(&out));
    let target = std::fs::read_link(&conf).expect("the link is still there");
    assert_eq!(target, Path::new("/nonexistent/dotfiles/bgrun.fish"));
    succeeded(&super::install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert!(std::fs::read_link(&conf).is_ok(), "uninstall removed the user's link");
}

#[test]
fn a_users_own_bgrun_fish_survives_a_forced_install_and_a_replaced_one_survives_uninstall() {
    let env = Env::new();
    let bins = binaries(&env);
    let bins = bins.to_str().expect("a UTF-8 path");
    let conf = env.home.join(".config/fish/conf.d/bgrun.fish");
    std::fs::create_dir_all(conf.parent().expect("a parent")).expect("making conf.d");
    let mine = "set -gx MINE 1\n";
    write(&conf, mine);

    // --force replaces it for the install's time and uninstall puts it back.
    succeeded(&super::install(&env, &["--no-build", bins, "--force"]), "install.sh --force");
    let ours = std::fs::read_to_string(&conf).expect("reading bgrun.fish");
    assert!(ours.contains("set -gx PATH"), "--force did not write the PATH line: {ours}");
    succeeded(&super::install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert_eq!(std::fs::read_to_string(&conf).ok().as_deref(), Some(mine), "the user's bgrun.fish is lost");

    // A file the user put in place of the installed one stays.
    std::fs::remove_file(&conf).expect("removing bgrun.fish");
    succeeded(&super::install(&env, &["--no-build", bins]), "install.sh");
    write(&conf, mine);
    succeeded(&super::install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert_eq!(std::fs::read_to_string(&conf).ok().as_deref(), Some(mine), "uninstall removed the user's file");
}
